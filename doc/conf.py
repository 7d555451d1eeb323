"""Sphinx configuration of the rbnodia documentation (``make docs``).

The API pages (``doc/api/``) document each module's ``__all__`` with
sphinx-automodapi and numpydoc, as Rubin's documenteer does; the stub pages
of the classes and functions are generated into ``doc/py-api/`` at build
time.  Backticked names in the pages and docstrings are Python objects
(``default_role = "py:obj"``).
"""

from rbnodia.version import __version__

project = "rbnodia"
author = "rbnodia developers"
copyright = "rbnodia developers, GPL-3.0-or-later"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_automodapi.automodapi",
    "sphinx_automodapi.smart_resolver",
]

default_role = "py:obj"
exclude_patterns = ["_build", "_generated"]
templates_path: list[str] = []

# automodapi: one stub page per documented object, no inheritance diagrams
# (they need Graphviz).
automodapi_toctreedirnm = "py-api"
automodapi_inheritance_diagram = False
automodsumm_inherited_members = False
autosummary_generate = True
autodoc_typehints = "none"
# numpydoc renders the sections; automodapi lists the class members.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

html_theme = "pydata_sphinx_theme"
html_title = f"rbnodia {version}"
html_theme_options = {"navigation_with_keys": False}

#!/usr/bin/env python
"""Validate the numpydoc docstrings of the files ruff checks.

``make lint`` runs this after ``ruff check``.  It is ``numpydoc lint`` (the
validation hook of numpydoc, configured by ``[tool.numpydoc_validation]`` in
``pyproject.toml``) with two differences:

- The files are the Python files that ``ruff check --show-files`` lists
  under the given folders, so the one exclusion list of ``[tool.ruff]``
  applies to both linters.
- ``RT01`` (no Returns section) is not reported for properties: numpydoc's
  source-level validator does not recognise the ``@property`` decorator and
  asks every property for a Returns section, which is why lsst/pipe_base
  turns ``RT01`` off altogether; here it stays on for functions and
  methods.
- Methods decorated with `typing.override` are not checked: the base class
  documents them (Sphinx shows its docstring), as ruff's ``D102`` assumes.
  Nor are functions defined inside functions: they are not API.

Usage::

    python scripts/numpydoc_lint.py python benchmarks

Exit status 0 when every docstring passes, 1 otherwise (each problem is
printed as ``path:line: CHECK message``).
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from numpydoc.hooks import validate_docstrings

REPO = Path(__file__).resolve().parents[1]
_PROPERTY_DECORATORS = {"property", "cached_property", "functools.cached_property"}
_OVERRIDE_DECORATORS = {"override", "typing.override"}


def _decorators(node: ast.AST) -> list[str]:
    return [ast.unparse(d) for d in getattr(node, "decorator_list", [])]


def _is_property(node: ast.AST) -> bool:
    return any(d in _PROPERTY_DECORATORS or d.endswith(".setter") for d in _decorators(node))


class _Visitor(validate_docstrings.DocstringVisitor):
    """The numpydoc hook's visitor, without ``RT01`` on properties and
    without overrides.
    """

    def _ignore_issue(self, node: ast.AST, check: str) -> bool:
        if any(d in _OVERRIDE_DECORATORS for d in _decorators(node)):
            return True
        if any(isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef) for outer in self.stack[:-1]):
            return True
        if check == "RT01" and _is_property(node):
            return True
        return super()._ignore_issue(node, check)


def ruff_files(folders: list[str]) -> list[Path]:
    """List the Python files that ruff checks under ``folders``.

    Parameters
    ----------
    folders : `list` [`str`]
        Folders (or files) relative to the repository root.

    Returns
    -------
    files : `list` [`pathlib.Path`]
        The ``.py`` files, after ruff's exclusions.
    """
    ruff = shutil.which("ruff", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if ruff is None:
        raise SystemExit("numpydoc_lint: ruff is not installed (pip install -e '.[test]').")
    done = subprocess.run([ruff, "check", "--show-files", *folders], cwd=REPO, capture_output=True,
                          text=True, check=True)
    return sorted(Path(line) for line in done.stdout.splitlines() if line.endswith(".py"))


def lint(files: list[Path]) -> int:
    """Validate the docstrings of ``files``; print each problem.

    Parameters
    ----------
    files : `list` [`pathlib.Path`]
        Python source files.

    Returns
    -------
    problems : `int`
        The number of problems found.
    """
    config = validate_docstrings.parse_config(REPO)
    problems = 0
    for path in files:
        visitor = _Visitor(filepath=str(path), config=config)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        for location, _name, check, message in visitor.findings:
            print(f"{Path(location).relative_to(REPO) if location.startswith('/') else location}: "
                  f"{check} {message}")
            problems += 1
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the check from the command line.

    Parameters
    ----------
    argv : `list` [`str`], optional
        The folders to check, relative to the repository root; default
        ``sys.argv[1:]``.

    Returns
    -------
    status : `int`
        0 if every docstring passes, 1 otherwise.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="Folders to check, relative to the repository root.")
    args = parser.parse_args(argv)
    files = ruff_files(args.folders)
    problems = lint(files)
    if problems:
        print(f"numpydoc: {problems} docstring problem(s) in {len(files)} files "
              "(checks: [tool.numpydoc_validation] in pyproject.toml).")
        return 1
    print(f"numpydoc: {len(files)} files pass.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

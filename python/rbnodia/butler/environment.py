"""The environment a shell needs to see rbnodia's pipelines and storage
classes: ``RBNODIA_DIR`` (for ``$RBNODIA_DIR`` in pipeline imports) and
``DAF_BUTLER_CONFIG_PATH`` (for the ``RealBogusModel`` and
``LabelledStamps`` storage classes).  The EUPS table sets both in the stack;
``rbnodia env`` prints them for pip installs.
"""

from __future__ import annotations

__all__ = ["environment", "package_dir"]

import importlib.resources
import os
from pathlib import Path


def package_dir() -> Path:
    """Return the folder holding ``pipelines/`` and ``config/`` (like ``$RBNODIA_DIR``).

    Returns
    -------
    path : `pathlib.Path`
        The installed ``rbnodia`` package folder.
    """
    return Path(str(importlib.resources.files("rbnodia"))).resolve()


def environment() -> dict[str, str]:
    """Return the variables that make a shell see rbnodia's pipelines and storage classes.

    Returns
    -------
    variables : `dict` [`str`, `str`]
        ``RBNODIA_DIR`` and ``DAF_BUTLER_CONFIG_PATH`` (rbnodia's Butler
        configuration before any already set).
    """
    root = package_dir()
    butler_config = str(root / "config" / "butler")
    existing = os.environ.get("DAF_BUTLER_CONFIG_PATH", "")
    parts = [butler_config] + [p for p in existing.split(os.pathsep) if p and p != butler_config]
    return {"RBNODIA_DIR": str(root), "DAF_BUTLER_CONFIG_PATH": os.pathsep.join(parts)}

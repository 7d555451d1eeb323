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
    """Folder holding ``pipelines/`` and ``config/`` (like ``$RBNODIA_DIR``)."""
    return Path(str(importlib.resources.files("rbnodia"))).resolve()


def environment() -> dict[str, str]:
    """Variables that make a shell see rbnodia's pipelines and storage classes."""
    root = package_dir()
    butler_config = str(root / "config" / "butler")
    existing = os.environ.get("DAF_BUTLER_CONFIG_PATH", "")
    parts = [butler_config] + [p for p in existing.split(os.pathsep) if p and p != butler_config]
    return {"RBNODIA_DIR": str(root), "DAF_BUTLER_CONFIG_PATH": os.pathsep.join(parts)}

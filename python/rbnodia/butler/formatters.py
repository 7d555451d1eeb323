"""Butler formatter for rbnodia model files (storage class ``RealBogusModel``).

The storage class and this formatter are declared in
``config/butler/storageClasses.yaml`` and
``config/butler/datastores/fileDatastore.yaml``; ``config/butler-seed.yaml``
holds both for ``butler create --seed-config``.
"""

from __future__ import annotations

__all__ = ["RealBogusModelFormatter"]

from typing import Any

from lsst.daf.butler import FormatterV2
from lsst.resources import ResourcePath

from ..nn.model import MODEL_SUFFIX


class RealBogusModelFormatter(FormatterV2):
    """Read and write `rbnodia.nn.RealBogusModel` as ``.rbmodel`` files.

    Reading goes through `rbnodia.nn.load_model`, so a process that reads the
    same model for many quanta deserialises it once.
    """

    default_extension = MODEL_SUFFIX
    supported_extensions = frozenset({MODEL_SUFFIX})
    can_read_from_uri = True

    def read_from_uri(self, uri: ResourcePath, component: str | None = None, expected_size: int = -1) -> Any:
        from ..nn.model import load_model

        return load_model(uri.read())

    def to_bytes(self, in_memory_dataset: Any) -> bytes:
        return in_memory_dataset.to_bytes()

"""Butler formatters for rbnodia's own storage classes.

``RealBogusModel``
    `rbnodia.nn.RealBogusModel` as a ``.rbmodel`` file.
``LabelledStamps``
    `rbnodia.core.LabelledStamps` as an ``.npz`` file.

Both are declared in ``config/butler/storageClasses.yaml`` and
``config/butler/datastores/fileDatastore.yaml`` (found through
``DAF_BUTLER_CONFIG_PATH``), and together in ``config/butler-seed.yaml`` for
``butler create --seed-config``.
"""

from __future__ import annotations

__all__ = ["LabelledStampsFormatter", "RealBogusModelFormatter"]

import os
import tempfile
from typing import Any, override

from lsst.daf.butler import FormatterV2
from lsst.resources import ResourcePath

from ..nn.model import MODEL_SUFFIX


class RealBogusModelFormatter(FormatterV2):
    """Read and write `rbnodia.nn.RealBogusModel` as ``.rbmodel`` files.

    Reading goes through `rbnodia.nn.load_model`, so a process that reads the
    same model for many quanta deserialises it once; a model file with its
    inference graphs is read without TensorFlow.  Errors name the dataset's
    URI.
    """

    default_extension = MODEL_SUFFIX
    supported_extensions = frozenset({MODEL_SUFFIX})
    can_read_from_uri = True

    @override
    def read_from_uri(self, uri: ResourcePath, component: str | None = None, expected_size: int = -1) -> Any:
        from ..nn.model import load_model

        return load_model(uri.read(), origin=str(uri))

    @override
    def to_bytes(self, in_memory_dataset: Any) -> bytes:
        return in_memory_dataset.to_bytes()


class LabelledStampsFormatter(FormatterV2):
    """Read and write `rbnodia.core.LabelledStamps` as ``.npz`` files."""

    default_extension = ".npz"
    supported_extensions = frozenset({".npz"})
    can_read_from_local_file = True

    @override
    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        from ..core.stampset import LabelledStamps

        return LabelledStamps.load(path)

    @override
    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            written = in_memory_dataset.save(os.path.join(tmp, "stamps.npz"))
            uri.transfer_from(ResourcePath(str(written)), transfer="copy")

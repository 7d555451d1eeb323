"""Model files as `RealBogusModel` objects: `load_model` (once per process,
from a path, a packaged model's name or bytes), the packaged models, and
`convert_model_file`.
"""

from __future__ import annotations

__all__ = ["convert_model_file", "load_model", "packaged_model_names", "packaged_model_path"]

import hashlib
import importlib.resources
import os
import threading
from pathlib import Path

from .model import RealBogusModel
from .modelfile import MODEL_SUFFIX

_CACHE: dict[str, RealBogusModel] = {}
_CACHE_LOCK = threading.Lock()


def load_model(source: str | os.PathLike | bytes, *, origin: str | None = None) -> RealBogusModel:
    """Load a model file once per process.

    Parameters
    ----------
    source : `str`, `os.PathLike` or `bytes`
        Path of a ``.rbmodel`` file, the name of a packaged model (see
        `packaged_model_names`), or the file's bytes.
    origin : `str`, optional
        Where bytes come from (e.g. a Butler URI), for messages.

    Returns
    -------
    model : `RealBogusModel`
        Shared instance: later loads of the same bytes return it.

    Raises
    ------
    FileNotFoundError
        If there is no such file or packaged model.
    rbnodia.nn.ModelFileError
        If the file is invalid (the message names it).
    """
    if isinstance(source, bytes):
        data, name = source, origin or "<bytes>"
    else:
        path = Path(source)
        if not path.exists() and str(source) in packaged_model_names():
            path = packaged_model_path(str(source))
        if not path.exists():
            raise FileNotFoundError(
                f"No model file {str(source)!r}; packaged models are {packaged_model_names()}."
            )
        data, name = path.read_bytes(), str(path)
    key = hashlib.sha256(data).hexdigest()
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = RealBogusModel.from_bytes(data, source=name)
            _CACHE[key] = model
    return model


def convert_model_file(source: str | os.PathLike, destination: str | os.PathLike) -> RealBogusModel:
    """Rewrite a model file in the current format, its graphs translated
    again from its Keras network (needs the ``[train]`` extra).

    Weights and metadata are kept; the ``version`` changes when the graphs
    (or the format's hash) do.

    Parameters
    ----------
    source : `str` or `os.PathLike`
        The model file to read.
    destination : `str` or `os.PathLike`
        The file to write (may equal ``source``).

    Returns
    -------
    model : `RealBogusModel`
        The model as written.
    """
    source = Path(source)
    model = RealBogusModel.from_bytes(source.read_bytes(), source=str(source))
    model.network  # noqa: B018 - loads (and checks) the Keras network, so the graphs are translated again
    model.save(destination)
    return model


def _packaged_dir() -> Path:
    return Path(str(importlib.resources.files("rbnodia.data").joinpath("models")))


def packaged_model_names() -> list[str]:
    """Return the names of the model files shipped inside the package.

    Returns
    -------
    names : `list` [`str`]
        Sorted names, e.g. ``nodia_default``.
    """
    folder = _packaged_dir()
    return sorted(p.name[: -len(MODEL_SUFFIX)] for p in folder.glob(f"*{MODEL_SUFFIX}"))


def packaged_model_path(name: str) -> Path:
    """Return the path of a packaged model file by name (e.g. ``nodia_default``).

    Parameters
    ----------
    name : `str`
        Packaged model name.

    Returns
    -------
    path : `pathlib.Path`
        The model file.
    """
    path = _packaged_dir() / f"{name}{MODEL_SUFFIX}"
    if not path.exists():
        raise FileNotFoundError(f"No packaged model {name!r}; packaged models are {packaged_model_names()}.")
    return path

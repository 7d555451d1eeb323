"""Keras and TensorFlow, imported only where they are needed: to train, to
use the TensorFlow backend, and to read, write or translate a model file's
Keras network.

A pipeline that classifies with a model file's ONNX graphs never imports
this module's dependencies; where they are needed and missing, the error
says which install extra brings them (``[train]``).
"""

from __future__ import annotations

__all__ = [
    "TRAIN_EXTRA",
    "import_keras",
    "import_tensorflow",
    "library_versions",
    "load_network",
    "save_network",
]

import importlib.metadata
import os
import tempfile
from typing import Any

from .metadata import ModelFileError
from .modelfile import check_keras_archive

TRAIN_EXTRA = "the [train] extra (pip install 'rbnodia[train]')"
"""What to install for TensorFlow, Keras and onnx."""


def _quiet_tensorflow() -> None:
    """Silence TensorFlow's start-up chatter, unless the user chose a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_train_module(name: str, purpose: str) -> Any:
    """Import ``keras`` or ``tensorflow`` quietly; if it is missing, raise an
    `ImportError` naming ``purpose`` and the extra to install.
    """
    _quiet_tensorflow()
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"{purpose} needs TensorFlow and Keras, {TRAIN_EXTRA}: {err}") from err


def import_keras(purpose: str) -> Any:
    """Return the ``keras`` module.

    Parameters
    ----------
    purpose : `str`
        What needs it, for the message if it is missing (e.g. "Training").

    Returns
    -------
    keras : `module`
        The imported module.

    Raises
    ------
    ImportError
        If Keras or TensorFlow cannot be imported; the message names the
        purpose and the extra to install.
    """
    return _import_train_module("keras", purpose)


def import_tensorflow(purpose: str) -> Any:
    """Return the ``tensorflow`` module (see `import_keras`).

    Parameters
    ----------
    purpose : `str`
        What needs it, for the message if it is missing.

    Returns
    -------
    tensorflow : `module`
        The imported module.
    """
    return _import_train_module("tensorflow", purpose)


def load_network(data: bytes, source: str) -> Any:
    """Return the Keras network of a model file's ``model.keras``, loaded in Keras'
    safe mode: a network that holds Python code (a ``Lambda`` layer) is
    refused, never run.

    Parameters
    ----------
    data : `bytes`
        ``model.keras``.
    source : `str`
        The model file, for messages.

    Returns
    -------
    network : `keras.Model`
        The network, not compiled.

    Raises
    ------
    ImportError
        If TensorFlow or Keras is missing.
    rbnodia.nn.ModelFileError
        If ``data`` is not a loadable Keras network, or holds code.
    """
    keras = import_keras(f"Reading the Keras network of {source}")
    check_keras_archive(data, source)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as stream:
            stream.write(data)
        try:
            return keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as err:  # noqa: BLE001 - any failure of Keras' reader means a bad file
            text = str(err).replace(path, "model.keras").replace(tmp, "<model.keras>").strip()
            if "safe_mode" in text or "Lambda" in text:
                raise ModelFileError(
                    f"Refusing the network in {source}: model.keras holds Python code (a Lambda layer or a "
                    f"custom object), which rbnodia never runs."
                ) from None
            reason = text.splitlines()[0] if text else type(err).__name__
            raise ModelFileError(
                f"Not a valid network in {source}: model.keras cannot be loaded ({reason})."
            ) from None


def save_network(network: Any) -> bytes:
    """Return a Keras network as the bytes of a ``.keras`` file.

    Parameters
    ----------
    network : `keras.Model`
        The network.

    Returns
    -------
    data : `bytes`
        The ``.keras`` archive.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        network.save(path)
        with open(path, "rb") as stream:
            return stream.read()


def library_versions() -> dict[str, str]:
    """Return the versions of the libraries that write a model file (from the installed
    distributions' metadata; nothing is imported).

    Returns
    -------
    versions : `dict` [`str`, `str`]
        Distribution name -> version, for those installed.
    """
    from ..version import __version__

    versions = {"rbnodia": __version__}
    sources = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "keras": ("keras",), "numpy": ("numpy",),
               "onnx": ("onnx",), "onnxruntime": ("onnxruntime",)}
    for name, distributions in sources.items():
        for distribution in distributions:
            try:
                versions[name] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions

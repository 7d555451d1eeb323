"""The rbnodia model file: a trained Keras network plus everything needed to
use it correctly.

A model file (suffix ``.rbmodel``) is a zip archive holding

``model.keras``
    The Keras network in Keras' native format (the source of truth).
``metadata.json``
    `ModelMetadata`: architecture, layout, stacking, stamp size, scaling
    recipe, decision threshold and how it was chosen, training-data summary,
    metrics, library versions, and the content hash.

The content hash is a SHA-256 over the weights and the settings that change
what the network computes; ``version`` (``<name>@<hash[:12]>``) is what the
classification task writes into every catalog row.

Output convention: the network's softmax column 0 is the probability that a
detection is REAL (DES autoscan labels: 0 = real, 1 = bogus), and
`RealBogusModel.predict` returns that column, Rubin's reliability ``score``.
"""

from __future__ import annotations

__all__ = [
    "INFERENCE_BACKENDS",
    "MODEL_SUFFIX",
    "ModelMetadata",
    "ModelMismatchError",
    "RealBogusModel",
    "load_model",
    "packaged_model_path",
    "packaged_model_names",
]

import dataclasses
import datetime
import hashlib
import importlib.resources
import io
import json
import logging
import os
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..core.layouts import Layout, Stacking, input_shape
from ..core.scaling import SCALING_VERSION

MODEL_SUFFIX = ".rbmodel"
_FORMAT_VERSION = 1
_LOG = logging.getLogger(__name__)

INFERENCE_BACKENDS = ("auto", "tensorflow", "onnx")
"""Values of the ``backend`` argument of `RealBogusModel.probabilities`."""

class ModelMismatchError(ValueError):
    """A model does not fit the inputs it was asked to classify."""


@dataclasses.dataclass
class ModelMetadata:
    """Everything a user of a model file needs besides the weights.

    Attributes
    ----------
    name : `str`
        Human-readable model name (e.g. ``nodia_default``).
    architecture : `str`
        Registered architecture name (`rbnodia.nn.architectures`).
    layout : `str`
        ``noDIA`` or ``DIA``.
    stacking : `str`
        ``horizontal`` (the paper) or ``channels``.
    stamp_size : `int`
        Stamp width/height in pixels.
    scaling_version : `str`
        Scaling recipe the network was trained with.
    threshold : `float`
        Default decision threshold on ``score`` (P(real)): ``is_real`` is
        ``score >= threshold``.
    threshold_method : `str`
        How the threshold was chosen.
    training : `dict`
        Training-data summary and recipe.
    metrics : `dict`
        Evaluation metrics on held-out data.
    libraries : `dict`
        Versions of the libraries that wrote the model.
    created : `str`
        ISO 8601 UTC time the file was written.
    content_hash : `str`
        SHA-256 of weights and input settings (filled on save/load).
    """

    name: str
    architecture: str
    layout: str
    stacking: str = Stacking.HORIZONTAL.value
    stamp_size: int = 51
    scaling_version: str = SCALING_VERSION
    threshold: float = 0.5
    threshold_method: str = "fixed at 0.5"
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    libraries: dict[str, str] = dataclasses.field(default_factory=dict)
    created: str = ""
    content_hash: str = ""

    @property
    def version(self) -> str:
        """Catalog ``version`` string: ``<name>@<first 12 hex of hash>``."""
        return f"{self.name}@{self.content_hash[:12]}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        """Inverse of `to_dict`, ignoring unknown keys from newer writers."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _library_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from ..version import __version__

    return {"rbnodia": __version__, "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


class RealBogusModel:
    """A Keras real/bogus network with its metadata and a fast predictor.

    Parameters
    ----------
    network : `keras.Model`
        Network whose last layer is a 2-way softmax, column 0 = P(real).
    metadata : `ModelMetadata`
        Its metadata; ``content_hash`` is recomputed from the network.

    Raises
    ------
    ModelMismatchError
        If the network's input shape does not match the metadata.

    Notes
    -----
    Prediction runs on ONNX Runtime when it is installed (the ``auto``
    backend; `rbnodia.nn.onnx_backend`), else through a compiled TensorFlow
    function; each is built on first use and kept for the life of the
    object.  The ONNX graph holds a copy of the weights taken when it was
    built: after changing the Keras weights call `refresh_hash` (training
    does), which also drops the compiled predictors.
    """

    def __init__(self, network: Any, metadata: ModelMetadata) -> None:
        self.network = network
        self.metadata = metadata
        expected = input_shape(metadata.layout, metadata.stamp_size, metadata.stacking)
        actual = tuple(network.input_shape[1:])
        if actual != expected:
            raise ModelMismatchError(
                f"Network input shape {actual} does not match layout {metadata.layout}, "
                f"stacking {metadata.stacking} and stamp size {metadata.stamp_size} (expected {expected})."
            )
        self.metadata.content_hash = self.compute_content_hash()
        self._predict_fn = None
        self._onnx: Any = None  # OnnxPredictor, or the exception that prevented one
        self._lock = threading.Lock()

    @classmethod
    def from_architecture(
        cls, architecture: str, *, name: str | None = None, stamp_size: int = 51, threshold: float = 0.5
    ) -> RealBogusModel:
        """An untrained model of a registered architecture."""
        from .architectures import build_network, get_architecture

        arch = get_architecture(architecture)
        metadata = ModelMetadata(
            name=name or architecture,
            architecture=architecture,
            layout=arch.layout.value,
            stacking=arch.stacking.value,
            stamp_size=stamp_size,
            threshold=threshold,
        )
        return cls(build_network(architecture, stamp_size), metadata)

    # Convenience accessors.
    @property
    def layout(self) -> Layout:
        return Layout(self.metadata.layout)

    @property
    def stacking(self) -> Stacking:
        return Stacking(self.metadata.stacking)

    @property
    def stamp_size(self) -> int:
        return int(self.metadata.stamp_size)

    @property
    def threshold(self) -> float:
        return float(self.metadata.threshold)

    @property
    def version(self) -> str:
        return self.metadata.version

    def compute_content_hash(self) -> str:
        """SHA-256 over input settings and every weight array, in order."""
        digest = hashlib.sha256()
        settings = {
            k: getattr(self.metadata, k) for k in ("architecture", "layout", "stacking", "stamp_size", "scaling_version")
        }
        digest.update(json.dumps(settings, sort_keys=True).encode())
        for weight in self.network.get_weights():
            weight = np.ascontiguousarray(weight)
            digest.update(f"{weight.dtype.str}{weight.shape}".encode())
            digest.update(weight.tobytes())
        return digest.hexdigest()

    def refresh_hash(self) -> None:
        """Recompute the content hash after the weights changed (training)."""
        self.metadata.content_hash = self.compute_content_hash()
        with self._lock:
            self._predict_fn = None
            self._onnx = None

    def check_compatible(
        self, layout: Layout | str, stamp_size: int, stacking: Stacking | str | None = None
    ) -> None:
        """Raise `ModelMismatchError` unless the model accepts such inputs.

        Parameters
        ----------
        layout : `~rbnodia.core.Layout` or `str`
            The layout the caller prepares.
        stamp_size : `int`
            The stamp size the caller cuts.
        stacking : `~rbnodia.core.Stacking` or `str`, optional
            The stacking the caller uses; the model's own if `None`.
        """
        problems = []
        if Layout(layout) is not self.layout:
            problems.append(f"layout {self.layout.value} (inputs are {Layout(layout).value})")
        if int(stamp_size) != self.stamp_size:
            problems.append(f"stamp size {self.stamp_size} (inputs are {stamp_size})")
        if stacking is not None and Stacking(stacking) is not self.stacking:
            problems.append(f"stacking {self.stacking.value} (inputs are {Stacking(stacking).value})")
        if self.metadata.scaling_version != SCALING_VERSION:
            problems.append(
                f"scaling {self.metadata.scaling_version!r} (this rbnodia scales with {SCALING_VERSION!r})"
            )
        if problems:
            raise ModelMismatchError(f"Model {self.version} expects " + "; ".join(problems) + ".")

    # Prediction.
    def _compiled(self):
        with self._lock:
            if self._predict_fn is None:
                import tensorflow as tf

                network = self.network
                spec = tf.TensorSpec((None,) + tuple(network.input_shape[1:]), tf.float32)

                @tf.function(input_signature=[spec], reduce_retracing=True)
                def forward(batch):
                    return network(batch, training=False)

                self._predict_fn = forward
            return self._predict_fn

    def _onnx_predictor(self, required: bool) -> Any:
        """The ONNX Runtime predictor, built on first use; `None` if unusable
        and not ``required``."""
        with self._lock:
            if self._onnx is None:
                from .onnx_backend import OnnxPredictor, onnx_available

                if not onnx_available():
                    self._onnx = ImportError("onnx and onnxruntime are needed for the ONNX backend")
                else:
                    try:
                        self._onnx = OnnxPredictor(self.network)
                        _LOG.debug("Model %s predicts with ONNX Runtime.", self.version)
                    except Exception as err:  # noqa: BLE001 - unsupported layer, broken onnxruntime: use TF
                        self._onnx = err
                        _LOG.info("Model %s cannot use ONNX Runtime (%s); using TensorFlow.",
                                  self.version, err)
            predictor = self._onnx
        if isinstance(predictor, Exception):
            if required:
                raise RuntimeError(f"The ONNX backend is unavailable for model {self.version}: {predictor}") \
                    from predictor
            return None
        return predictor

    def inference_backend(self, backend: str = "auto") -> str:
        """The backend `probabilities` uses for ``backend``: ``onnx`` or ``tensorflow``.

        ``auto`` means ``RBNODIA_INFERENCE_BACKEND`` if set, else ONNX Runtime
        when it is installed and can run the network, else TensorFlow.
        """
        if backend not in INFERENCE_BACKENDS:
            raise ValueError(f"Unknown inference backend {backend!r}; choose from {INFERENCE_BACKENDS}.")
        if backend == "auto":
            backend = os.environ.get("RBNODIA_INFERENCE_BACKEND", "auto").strip().lower() or "auto"
            if backend not in INFERENCE_BACKENDS:
                raise ValueError(f"RBNODIA_INFERENCE_BACKEND={backend!r}; choose from {INFERENCE_BACKENDS}.")
        if backend == "auto":
            return "onnx" if self._onnx_predictor(required=False) is not None else "tensorflow"
        if backend == "onnx":
            self._onnx_predictor(required=True)
        return backend

    def probabilities(
        self, inputs: np.ndarray, batch_size: int = 1024, *, backend: str = "auto"
    ) -> np.ndarray:
        """Softmax outputs ``(n, 2)``: column 0 P(real), column 1 P(bogus).

        Parameters
        ----------
        inputs : `numpy.ndarray`
            ``(n,) + input_shape`` scaled, stacked stamps.
        batch_size : `int`
            Most inputs per call into the backend (bounds memory).  ONNX
            Runtime cuts each call into chunks of at most
            `rbnodia.nn.onnx_backend.CHUNK` stamps, which keeps its
            intermediate images in the CPU caches, and runs the chunks on
            all cores at once.
        backend : `str`
            ``auto`` (default; see `inference_backend`), ``tensorflow`` (the
            compiled Keras network) or ``onnx`` (ONNX Runtime; the graph is
            translated from the Keras network once per model and process).
            Both give the same outputs to float32 rounding (1e-6).

        Raises
        ------
        ModelMismatchError
            If the inputs' shape does not fit the network.
        RuntimeError
            If ``backend='onnx'`` and ONNX Runtime cannot run this network.
        """
        inputs = np.asarray(inputs, dtype=np.float32)
        if inputs.shape[1:] != tuple(self.network.input_shape[1:]):
            raise ModelMismatchError(
                f"Inputs of shape {inputs.shape[1:]} do not fit model {self.version} "
                f"(expects {tuple(self.network.input_shape[1:])})."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        chosen = self.inference_backend(backend)
        if len(inputs) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        if chosen == "onnx":
            forward = self._onnx_predictor(required=True)
        else:
            forward = self._compiled()
        out = [np.asarray(forward(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    def predict(self, inputs: np.ndarray, batch_size: int = 1024, *, backend: str = "auto") -> np.ndarray:
        """Reliability score P(real) per input, float32 in [0, 1] (see `probabilities`)."""
        return self.probabilities(inputs, batch_size, backend=backend)[:, 0]

    # Serialisation.
    def to_bytes(self) -> bytes:
        """The model file's bytes (see module docstring)."""
        self.refresh_hash()
        self.metadata.libraries = _library_versions()
        self.metadata.created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        with tempfile.TemporaryDirectory() as tmp:
            keras_path = os.path.join(tmp, "model.keras")
            self.network.save(keras_path)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(
                    "metadata.json",
                    json.dumps({"format_version": _FORMAT_VERSION, **self.metadata.to_dict()}, indent=2),
                )
                archive.write(keras_path, "model.keras")
        return buffer.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file atomically (a partial file is never left)."""
        path = Path(path)
        data = self.to_bytes()
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path

    @classmethod
    def from_bytes(cls, data: bytes) -> RealBogusModel:
        """Read a model file's bytes (uncached; see `load_model`)."""
        import keras

        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            header = json.loads(archive.read("metadata.json"))
            keras_bytes = archive.read("model.keras")
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
            raise ValueError(f"Not an rbnodia model file: {err}") from err
        if header.get("format_version", 0) > _FORMAT_VERSION:
            raise ValueError(
                f"Model file format {header['format_version']} is newer than this rbnodia "
                f"understands ({_FORMAT_VERSION}); upgrade rbnodia."
            )
        stored_hash = header.get("content_hash", "")
        metadata = ModelMetadata.from_dict(header)
        with tempfile.TemporaryDirectory() as tmp:
            keras_path = os.path.join(tmp, "model.keras")
            with open(keras_path, "wb") as stream:
                stream.write(keras_bytes)
            network = keras.saving.load_model(keras_path, compile=False)
        model = cls(network, metadata)
        if stored_hash and stored_hash != model.metadata.content_hash:
            raise ValueError(
                f"Model file content hash mismatch (stored {stored_hash[:12]}, "
                f"computed {model.metadata.content_hash[:12]}): the file is corrupt or was edited."
            )
        return model


_CACHE: dict[str, RealBogusModel] = {}
_CACHE_LOCK = threading.Lock()


def load_model(source: str | os.PathLike | bytes) -> RealBogusModel:
    """Load a model file once per process.

    Parameters
    ----------
    source : `str`, `os.PathLike` or `bytes`
        Path of a ``.rbmodel`` file, the name of a packaged model (see
        `packaged_model_names`), or the file's bytes.

    Returns
    -------
    model : `RealBogusModel`
        Shared instance: later loads of the same bytes return it without
        touching TensorFlow again.
    """
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.exists() and str(source) in packaged_model_names():
            path = packaged_model_path(str(source))
        if not path.exists():
            raise FileNotFoundError(
                f"No model file {str(source)!r}; packaged models are {packaged_model_names()}."
            )
        data = path.read_bytes()
    key = hashlib.sha256(data).hexdigest()
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = RealBogusModel.from_bytes(data)
            _CACHE[key] = model
    return model


def _packaged_dir() -> Path:
    return Path(str(importlib.resources.files("rbnodia.data").joinpath("models")))


def packaged_model_names() -> list[str]:
    """Names of the model files shipped inside the package."""
    folder = _packaged_dir()
    return sorted(p.name[: -len(MODEL_SUFFIX)] for p in folder.glob(f"*{MODEL_SUFFIX}"))


def packaged_model_path(name: str) -> Path:
    """Path of a packaged model file by name (e.g. ``nodia_default``)."""
    path = _packaged_dir() / f"{name}{MODEL_SUFFIX}"
    if not path.exists():
        raise FileNotFoundError(f"No packaged model {name!r}; packaged models are {packaged_model_names()}.")
    return path

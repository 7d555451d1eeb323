"""`RealBogusModel`: a real/bogus network, its metadata and its inference
graphs, read from and written to a model file (`rbnodia.nn.modelfile`;
`rbnodia.nn.files` loads them once per process).

A model read from a file classifies with the file's ONNX graphs on ONNX
Runtime: numpy and onnxruntime are all it needs.  Its Keras network
(`RealBogusModel.network`) is loaded, with TensorFlow, only when asked for:
to train, to use the ``tensorflow`` backend, or to translate it again.  A
model built from a network (`RealBogusModel.from_architecture`, training)
translates it into the graphs at once, so both kinds predict the same way.

Output convention: the network's softmax column 0 is the probability that a
detection is REAL (DES autoscan labels: 0 = real, 1 = bogus), and
`RealBogusModel.predict` returns that column, Rubin's reliability ``score``.

The module passes 500 lines with one class, `RealBogusModel`, nearly half of it
the numpydoc docstrings of its public methods; the file format, the
metadata and the inference runtimes are modules of their own.
"""

from __future__ import annotations

__all__ = [
    "INFERENCE_BACKENDS",
    "MODEL_SUFFIX",
    "ModelMismatchError",
    "RealBogusModel",
    "convert_model_file",
    "load_model",
    "packaged_model_names",
    "packaged_model_path",
]

import datetime
import importlib.util
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..core.layouts import Layout, Stacking, input_shape
from ..core.scaling import SCALING_VERSION, Scaling
from .keras_io import TRAIN_EXTRA, import_tensorflow, library_versions, load_network, save_network
from .metadata import ModelFileError, ModelMetadata, check_metadata, metadata_from_header
from .modelfile import (
    FORMAT_VERSION,
    MODEL_SUFFIX,
    ModelFileContents,
    check_keras_archive,
    content_hash,
    graph_member,
    legacy_content_hash,
    read_model_file,
    weights_sha256,
    write_model_file,
)
from .onnx.runtime import GRAPH_ROLES, GraphVariants

_LOG = logging.getLogger(__name__)

INFERENCE_BACKENDS = ("auto", "tensorflow", "onnx")
"""Values of the ``backend`` argument of `RealBogusModel.probabilities`."""
_UNAVAILABLE = {"forward": "The ONNX backend is unavailable", "saliency": "ONNX saliency is unavailable"}
_NO_ONNX = f"the onnx package is missing, {TRAIN_EXTRA}"
_REQUIRED_FIELDS = ("stacking", "stamp_size", "scaling_version", "threshold", "content_hash")
"""Fields a format-2 file must have (besides name, architecture and layout)."""


class ModelMismatchError(ValueError):
    """A model does not fit the inputs it was asked to classify."""


def _translate(network: Any) -> tuple[dict[str, GraphVariants], dict[str, str]]:
    """Return the network's inference graphs, and why any role is missing."""
    try:
        from .onnx.translate import translate_model_graphs
    except ImportError:
        return {}, dict.fromkeys(GRAPH_ROLES, _NO_ONNX)
    return translate_model_graphs(network)


class RealBogusModel:
    """A real/bogus network with its metadata and inference graphs.

    Parameters
    ----------
    network : `keras.Model`
        Network whose last layer is a 2-way softmax, column 0 = P(real).
    metadata : `~rbnodia.nn.ModelMetadata`
        Its metadata; ``content_hash`` is recomputed.

    Raises
    ------
    ModelMismatchError
        If the network's input shape does not match the metadata.
    ValueError
        If a metadata value is invalid (e.g. a threshold outside [0, 1]).

    Notes
    -----
    The graphs hold a copy of the weights taken when they were translated:
    after changing the Keras weights call `refresh_hash` (training does),
    which translates them again and drops the compiled predictors.
    Models read from a file are made by `from_bytes` / `load_model`.
    """

    def __init__(self, network: Any, metadata: ModelMetadata) -> None:
        self._setup(metadata, f"<model {metadata.name!r} in memory>")
        problems = check_metadata(metadata)
        if problems:
            raise ValueError(f"Invalid model metadata: {'; '.join(problems)}.")
        self._check_network(network)
        self._network = network
        self.refresh_hash()

    def _setup(self, metadata: ModelMetadata, source: str) -> None:
        self.metadata = metadata
        self.source = source  # where the model was read from, for messages
        self._network: Any = None
        self._keras_bytes: bytes | None = None
        self._weights_sha256 = ""
        self._graphs: dict[str, GraphVariants] = {}
        self._graph_errors: dict[str, str] = {}
        self._runners: dict[str, Any] = {}
        self._predict_fn: Any = None
        self._lock = threading.RLock()

    def _check_network(self, network: Any) -> None:
        actual = tuple(network.input_shape[1:])
        if actual != self.input_shape:
            meta = self.metadata
            raise ModelMismatchError(
                f"Network input shape {actual} does not match layout {meta.layout}, stacking {meta.stacking} "
                f"and stamp size {meta.stamp_size} (expected {self.input_shape})."
            )

    @classmethod
    def from_architecture(
        cls,
        architecture: str,
        *,
        name: str | None = None,
        stamp_size: int = 51,
        threshold: float = 0.5,
        scaling: Scaling | str = SCALING_VERSION,
    ) -> RealBogusModel:
        """Return an untrained model of a registered architecture (needs Keras).

        Parameters
        ----------
        architecture : `str`
            Registered architecture name.
        name : `str`, optional
            Model name; default the architecture's.
        stamp_size : `int`, optional
            Stamp size in pixels.
        threshold : `float`, optional
            Score threshold of ``is_real``.
        scaling : `~rbnodia.core.scaling.Scaling` or `str`, optional
            The scaling recipe the network is to be trained with.

        Returns
        -------
        model : `RealBogusModel`
            The model, with random weights.
        """
        from .architectures import build_network, get_architecture

        arch = get_architecture(architecture)
        metadata = ModelMetadata(name=name or architecture, architecture=architecture,
                                 layout=arch.layout.value, stacking=arch.stacking.value,
                                 stamp_size=stamp_size, threshold=threshold,
                                 scaling_version=Scaling(scaling).value)
        return cls(build_network(architecture, stamp_size), metadata)

    # Convenience accessors.
    @property
    def layout(self) -> Layout:
        """Stamps the model reads (from the metadata)."""
        return Layout(self.metadata.layout)

    @property
    def stacking(self) -> Stacking:
        """How the stamps are stacked (from the metadata)."""
        return Stacking(self.metadata.stacking)

    @property
    def stamp_size(self) -> int:
        """Stamp size in pixels (from the metadata)."""
        return int(self.metadata.stamp_size)

    @property
    def scaling(self) -> Scaling:
        """Scaling recipe of the inputs (from the metadata).

        Raises
        ------
        ModelMismatchError
            If this rbnodia does not know the model's recipe.
        """
        try:
            return Scaling(self.metadata.scaling_version)
        except ValueError:
            raise ModelMismatchError(
                f"Model {self.version} expects scaling {self.metadata.scaling_version!r}; this rbnodia "
                f"scales with {[s.value for s in Scaling]}."
            ) from None

    @property
    def threshold(self) -> float:
        """Score threshold of ``is_real`` (from the metadata)."""
        return float(self.metadata.threshold)

    @property
    def version(self) -> str:
        """``<name>@<content-hash prefix>``, written in catalogs."""
        return self.metadata.version

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one network input ``(height, width, channels)``, from the metadata."""
        return input_shape(self.metadata.layout, int(self.metadata.stamp_size), self.metadata.stacking)

    @property
    def graphs(self) -> Mapping[str, GraphVariants]:
        """The inference graphs by role (`rbnodia.nn.onnx.runtime.GRAPH_ROLES`), read only."""
        return MappingProxyType(self._graphs)

    @property
    def network(self) -> Any:
        """The Keras network, loaded from the model file on first use.

        Raises
        ------
        ImportError
            If TensorFlow/Keras is missing (the ``[train]`` extra).
        rbnodia.nn.ModelFileError
            If the file's ``model.keras`` is not a valid network, holds code,
            or has other weights than the file's hash covers.
        """
        with self._lock:
            if self._network is None:
                network = load_network(self._keras_bytes, self.source)
                self._check_network(network)
                if weights_sha256(network.get_weights()) != self._weights_sha256:
                    raise ModelFileError(
                        f"Model file {self.source}: content hash mismatch: the weights in model.keras are "
                        "not those the file's hash covers; the file is corrupt or was edited."
                    )
                self._network = network
            return self._network

    def compute_content_hash(self) -> str:
        """Compute the SHA-256 over the output-changing settings, the weights' digest
        and the inference graphs (`rbnodia.nn.modelfile.content_hash`).

        Returns
        -------
        digest : `str`
            The hex digest.
        """
        return content_hash(self.metadata, self._weights_sha256, self._graphs)

    def refresh_hash(self) -> None:
        """Recompute the content hash after the weights or the threshold
        changed (training); with a loaded network, translate it again.
        """
        with self._lock:
            if self._network is not None:
                self._weights_sha256 = weights_sha256(self._network.get_weights())
                self._graphs, self._graph_errors = _translate(self._network)
                self._keras_bytes = None
            self._runners = {}
            self._predict_fn = None
            self.metadata.content_hash = self.compute_content_hash()

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
        if self.metadata.scaling_version not in tuple(Scaling):
            problems.append(
                f"scaling {self.metadata.scaling_version!r} (this rbnodia scales with "
                f"{[s.value for s in Scaling]})"
            )
        if problems:
            raise ModelMismatchError(f"Model {self.version} expects " + "; ".join(problems) + ".")

    # ONNX Runtime.
    def has_onnx(self, role: str = "forward") -> bool:
        """Tell whether graph ``role`` exists and ONNX Runtime is installed.

        Parameters
        ----------
        role : `str`, optional
            ``forward`` or ``saliency``.

        Returns
        -------
        available : `bool`
            True if the graph can run on ONNX Runtime.
        """
        return role in self._graphs and importlib.util.find_spec("onnxruntime") is not None

    def onnx_runner(self, role: str = "forward") -> Any:
        """Return the ONNX Runtime runner of this model, made on first use:
        `~rbnodia.nn.onnx.runtime.OnnxPredictor` for ``forward``,
        `~rbnodia.nn.onnx.runtime.OnnxSaliency` for ``saliency``.

        Parameters
        ----------
        role : `str`, optional
            ``forward`` or ``saliency``.

        Returns
        -------
        runner : `rbnodia.nn.onnx.runtime.OnnxPredictor` or `rbnodia.nn.onnx.runtime.OnnxSaliency`
            The runner, cached on the model.

        Raises
        ------
        RuntimeError
            If the model has no such graph, or ONNX Runtime is missing.
        rbnodia.nn.ModelFileError
            If ONNX Runtime cannot read the graph.
        """
        from .onnx.runtime import OnnxPredictor, OnnxSaliency

        with self._lock:
            runner = self._runners.get(role)
            if runner is not None:
                return runner
            if role not in self._graphs:
                reason = self._graph_errors.get(role, f"the model file has no {role} graph")
                raise RuntimeError(f"{_UNAVAILABLE[role]} for model {self.version}: {reason}")
            if importlib.util.find_spec("onnxruntime") is None:
                raise RuntimeError(f"{_UNAVAILABLE[role]} for model {self.version}: "
                                   "onnxruntime is not installed")
            try:
                if role == "forward":
                    runner = OnnxPredictor(self._graphs[role])
                else:
                    runner = OnnxSaliency(self._graphs[role], self._graphs.get("saliency_rows"))
            except Exception as err:  # noqa: BLE001 - ONNX Runtime's errors have no common base
                raise ModelFileError(f"Not a valid network in {self.source} ({graph_member(role)}): "
                                     f"ONNX Runtime cannot read it ({err}).") from None
            self._runners[role] = runner
            return runner

    def inference_backend(self, backend: str = "auto", role: str = "forward") -> str:
        """Return the backend that runs graph ``role`` for ``backend``: ``onnx`` or ``tensorflow``.

        ``auto`` means ONNX Runtime when the model has the ONNX graph of
        ``role`` and ONNX Runtime is installed, else TensorFlow.

        Parameters
        ----------
        backend : `str`, optional
            ``auto``, ``onnx`` or ``tensorflow``.
        role : `str`, optional
            The graph: ``forward`` (what `probabilities` runs) or
            ``saliency`` (what `rbnodia.nn.saliency.saliency_maps` runs).

        Returns
        -------
        backend : `str`
            ``onnx`` or ``tensorflow``.

        Raises
        ------
        ValueError
            If ``backend`` is not one of `INFERENCE_BACKENDS`.
        RuntimeError
            If ``backend='onnx'`` and the model cannot use it.
        """
        if backend not in INFERENCE_BACKENDS:
            raise ValueError(f"Unknown inference backend {backend!r}; choose from {INFERENCE_BACKENDS}.")
        if backend == "auto":
            return "onnx" if self.has_onnx(role) else "tensorflow"
        if backend == "onnx":
            self.onnx_runner(role)
        return backend

    def _compiled(self) -> Any:
        with self._lock:
            if self._predict_fn is None:
                tf = import_tensorflow(f"Predicting with model {self.version} on TensorFlow")
                network = self.network
                spec = tf.TensorSpec((None,) + self.input_shape, tf.float32)

                @tf.function(input_signature=[spec], reduce_retracing=True)
                def forward(batch):
                    return network(batch, training=False)

                self._predict_fn = forward
            return self._predict_fn

    def checked_inputs(self, inputs: np.ndarray, batch_size: int, threads: int | None) -> np.ndarray:
        """Return ``inputs`` as float32 after checking them and the batching
        options, as every inference entry point (`probabilities`,
        `rbnodia.nn.saliency.saliency_maps`) takes them.

        Parameters
        ----------
        inputs : `numpy.ndarray`
            ``(n,) + input_shape`` scaled, stacked stamps.
        batch_size : `int`
            Most inputs per call into the backend; must be positive.
        threads : `int` or `None`
            ONNX Runtime chunks run at once; must not be negative.

        Returns
        -------
        inputs : `numpy.ndarray`
            The inputs, float32.

        Raises
        ------
        ModelMismatchError
            If the inputs' shape does not fit the network.
        ValueError
            If ``batch_size`` is not positive or ``threads`` negative.
        """
        inputs = np.asarray(inputs, dtype=np.float32)
        if inputs.shape[1:] != self.input_shape:
            raise ModelMismatchError(
                f"Inputs of shape {inputs.shape[1:]} do not fit model {self.version} "
                f"(expects {self.input_shape})."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        if threads is not None and threads < 0:
            raise ValueError(f"threads must be 0 (all CPUs) or positive, got {threads}.")
        return inputs

    def probabilities(
        self, inputs: np.ndarray, batch_size: int = 1024, *, backend: str = "auto", threads: int | None = None
    ) -> np.ndarray:
        """Compute the softmax outputs ``(n, 2)``: column 0 P(real), column 1 P(bogus).

        Parameters
        ----------
        inputs : `numpy.ndarray`
            ``(n,) + input_shape`` scaled, stacked stamps.
        batch_size : `int`
            Most inputs per call into the backend (bounds memory).  ONNX
            Runtime cuts each call into chunks of at most
            `rbnodia.nn.onnx.runtime.CHUNK` stamps, which keeps its
            intermediate images in the CPU caches, and runs ``threads``
            chunks at once.
        backend : `str`
            ``auto`` (default; see `inference_backend`), ``onnx`` (the
            model's forward graph on ONNX Runtime) or ``tensorflow`` (the
            compiled Keras network; needs the ``[train]`` extra).  Both give
            the same outputs to float32 rounding (about 1e-6).
        threads : `int`, optional
            Chunks ONNX Runtime runs at once, one thread each; `None` or 0:
            every CPU this process may run on.  Ignored by TensorFlow.

        Returns
        -------
        probabilities : `numpy.ndarray`
            Array of shape ``(n, 2)``, float32.

        Raises
        ------
        ModelMismatchError
            If the inputs' shape does not fit the network.
        ValueError
            If ``batch_size`` is not positive, ``threads`` negative or
            ``backend`` unknown.
        RuntimeError
            If ``backend='onnx'`` and the model cannot use ONNX Runtime.
        ImportError
            If TensorFlow is needed and missing.
        """
        inputs = self.checked_inputs(inputs, batch_size, threads)
        chosen = self.inference_backend(backend)
        if len(inputs) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        if chosen == "onnx":
            runner = self.onnx_runner("forward")

            def forward(batch):
                return runner(batch, threads=threads)
        else:
            forward = self._compiled()
        out = [np.asarray(forward(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    def predict(
        self, inputs: np.ndarray, batch_size: int = 1024, *, backend: str = "auto", threads: int | None = None
    ) -> np.ndarray:
        """Compute the reliability score P(real) per input, float32 in [0, 1].

        Parameters
        ----------
        inputs : `numpy.ndarray`
            ``(n,) + input_shape`` scaled, stacked stamps.
        batch_size : `int`, optional
            Most inputs per call into the backend (see `probabilities`).
        backend : `str`, optional
            ``auto``, ``onnx`` or ``tensorflow`` (see `probabilities`).
        threads : `int`, optional
            Chunks ONNX Runtime runs at once (see `probabilities`).

        Returns
        -------
        scores : `numpy.ndarray`
            P(real) per input.
        """
        return self.probabilities(inputs, batch_size, backend=backend, threads=threads)[:, 0]

    # Serialisation.
    def to_bytes(self) -> bytes:
        """Return the model file's bytes (see `rbnodia.nn.modelfile`).

        Returns
        -------
        data : `bytes`
            The model file.

        Raises
        ------
        ValueError
            If a metadata value is invalid.
        ImportError
            If the model has a network to translate and the ``onnx``
            package is missing.
        """
        with self._lock:
            self.refresh_hash()
            problems = check_metadata(self.metadata)
            if problems:
                raise ValueError(f"Invalid model metadata: {'; '.join(problems)}.")
            if _NO_ONNX in self._graph_errors.values():
                raise ImportError(f"Writing model {self.version} needs the onnx package, {TRAIN_EXTRA}.")
            for role, reason in self._graph_errors.items():
                _LOG.warning("Model %s gets no ONNX %s graph (%s): using it will need TensorFlow.",
                             self.version, role, reason)
            if self._network is not None:
                keras = save_network(self._network)
                self.metadata.libraries = {**self.metadata.libraries, **library_versions()}
            else:
                keras = self._keras_bytes
            self.metadata.created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            header = {**self.metadata.to_dict(), "weights_sha256": self._weights_sha256}
            return write_model_file(header, keras, self._graphs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file atomically (a partial file is never left).

        Parameters
        ----------
        path : `str` or `os.PathLike`
            The file; `MODEL_SUFFIX` is appended if missing.

        Returns
        -------
        path : `pathlib.Path`
            The file written.
        """
        path = Path(path)
        data = self.to_bytes()
        tmp = path.with_name(path.name + ".partial")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> RealBogusModel:
        """Read a model file's bytes (uncached; see `load_model`).

        Parameters
        ----------
        data : `bytes`
            The file's bytes.
        source : `str`
            Where they come from, for messages.

        Returns
        -------
        model : `RealBogusModel`
            The model.

        Raises
        ------
        rbnodia.nn.ModelFileError
            If the file is not a valid model file, was edited, or is unsafe;
            the message names ``source``.
        ImportError
            If it is a format-1 file (no inference graphs) and TensorFlow is
            missing.
        """
        contents = read_model_file(data, source)
        legacy = contents.format_version < FORMAT_VERSION
        required = () if legacy else _REQUIRED_FIELDS
        metadata = metadata_from_header(contents.header, source, required)
        stored = metadata.content_hash
        if legacy:
            return cls._from_legacy(contents, metadata, source)
        check_keras_archive(contents.keras, source)
        model = cls.__new__(cls)
        model._setup(metadata, source)
        model._keras_bytes = contents.keras
        model._weights_sha256 = contents.weights_sha256
        model._graphs = contents.graphs
        model.refresh_hash()
        if stored != metadata.content_hash:
            raise ModelFileError(
                f"Model file {source}: content hash mismatch (stored {stored[:12]}, computed "
                f"{metadata.content_hash[:12]}): the file is corrupt or was edited."
            )
        if "forward" not in model._graphs:  # the network is all there is: read it now
            try:
                model.network  # noqa: B018
            except ImportError as err:
                raise ImportError(f"Model file {source} has no ONNX forward graph (its network has layers "
                                  f"the translation does not handle): using it needs {TRAIN_EXTRA}.") from err
        return model

    @classmethod
    def _from_legacy(
        cls, contents: ModelFileContents, metadata: ModelMetadata, source: str
    ) -> RealBogusModel:
        """Return a format-1 file: its Keras network, translated now."""
        try:
            network = load_network(contents.keras, source)
        except ImportError as err:
            raise ImportError(
                f"{source} is a format-1 model file, without inference graphs: reading it needs TensorFlow "
                f"and Keras, {TRAIN_EXTRA}; convert it once where they are installed with "
                f"`rbnodia convert-model {source} NEW{MODEL_SUFFIX}`."
            ) from err
        stored = metadata.content_hash
        computed = legacy_content_hash(metadata, network.get_weights())
        if stored and stored != computed:
            raise ModelFileError(
                f"Model file {source}: content hash mismatch (stored {stored[:12]}, computed "
                f"{computed[:12]}): the file is corrupt or was edited."
            )
        model = cls(network, metadata)
        model.source = source
        _LOG.info("Model file %s has format 1: translated its network on load (rbnodia convert-model "
                  "rewrites it with its inference graphs).", source)
        return model


# The model-file functions, importable from here as before (see rbnodia.nn.files).
from .files import convert_model_file, load_model, packaged_model_names, packaged_model_path  # noqa: E402

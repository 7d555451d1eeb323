"""The rbnodia model file (suffix ``.rbmodel``): reading, writing, hashing.

A model file is a zip archive holding

``metadata.json``
    `rbnodia.nn.metadata.ModelMetadata` plus ``format_version``,
    ``weights_sha256`` (of the network's weights) and ``graphs`` (the
    inference graphs present, by role, with their fold).
``model.keras``
    The Keras network in Keras' native format: the source of truth for
    training, read (with TensorFlow) only to train, to use the TensorFlow
    backend, or to translate it again.
``graphs/<role>.onnx`` and ``graphs/<role>.fold<k>.onnx``
    The ONNX graphs inference runs on (`rbnodia.nn.onnx.translate.GRAPH_ROLES`:
    ``forward``, ``saliency``, ``saliency_rows``; folded variants where the
    network starts with a 1-in/1-out convolution).  Reading and running
    them needs only numpy and ONNX Runtime.

The content hash (`content_hash`) is a SHA-256 over the settings that
change a model's output (`rbnodia.nn.metadata.HASHED_FIELDS`, the decision
threshold included), the weights' digest and every graph's bytes; editing
any of them without rewriting the hash makes the file fail to load.

Format 1 files (no graphs, no ``weights_sha256``; hash over the settings
without the threshold, and the weights) are still read; using one needs
TensorFlow, and ``rbnodia convert-model`` rewrites it in this format.

Reading is defensive: every member's inflated size is checked against a
limit before it is inflated (`MEMBER_LIMITS`), and read with a bounded
reader; every failure is a `~rbnodia.nn.metadata.ModelFileError` that names
the file.
"""

from __future__ import annotations

__all__ = [
    "FORMAT_VERSION",
    "MAX_MEMBERS",
    "MEMBER_LIMITS",
    "MODEL_SUFFIX",
    "TOTAL_LIMIT",
    "ModelFileContents",
    "check_keras_archive",
    "content_hash",
    "graph_member",
    "legacy_content_hash",
    "read_model_file",
    "weights_sha256",
    "write_model_file",
]

import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metadata import ModelFileError, ModelMetadata
from .onnx.runtime import GraphVariants

MODEL_SUFFIX = ".rbmodel"
"""File name suffix of model files."""
FORMAT_VERSION = 2
"""Format written by this rbnodia (1: Keras network only)."""
MEMBER_LIMITS = {
    "metadata.json": 4 * 2**20,
    "model.keras": 256 * 2**20,
    "graphs/": 256 * 2**20,
    "": 256 * 2**20,
}
"""Most bytes a member may inflate to: ``metadata.json``, ``model.keras``,
each graph, and each member of ``model.keras``."""
TOTAL_LIMIT = 1024 * 2**20
"""Most bytes all members of a model file (or of its ``model.keras``) may inflate to."""
MAX_MEMBERS = 64
"""Most members a model file (or its ``model.keras``) may hold."""
_KERAS_MEMBERS = ("config.json", "model.weights.h5")


@dataclass(frozen=True)
class ModelFileContents:
    """The parts of a model file, read and checked.

    Attributes
    ----------
    header : `dict`
        The parsed ``metadata.json``.
    format_version : `int`
        Its ``format_version``.
    keras : `bytes`
        ``model.keras``.
    graphs : `dict` [`str`, `~rbnodia.nn.onnx.runtime.GraphVariants`]
        The inference graphs by role (empty in format 1).
    weights_sha256 : `str`
        The weights' digest stored in the file ("" in format 1).
    """

    header: dict[str, Any]
    format_version: int
    keras: bytes
    graphs: dict[str, GraphVariants]
    weights_sha256: str


def graph_member(role: str, fold: int = 0) -> str:
    """Return the archive member of a graph: ``graphs/<role>.onnx`` or ``graphs/<role>.fold<k>.onnx``.

    Parameters
    ----------
    role : `str`
        Graph role (``forward``, ``saliency``, ...).
    fold : `int`, optional
        Stamps folded into channels; 0 for the plain graph.

    Returns
    -------
    member : `str`
        The archive member name.
    """
    return f"graphs/{role}.fold{fold}.onnx" if fold else f"graphs/{role}.onnx"


def weights_sha256(weights: Sequence[np.ndarray]) -> str:
    """Hash every weight array, in order (dtype, shape and bytes), with SHA-256.

    Parameters
    ----------
    weights : `~collections.abc.Sequence` [`numpy.ndarray`]
        The network's weights.

    Returns
    -------
    digest : `str`
        The hex digest.
    """
    digest = hashlib.sha256()
    _update_with_weights(digest, weights)
    return digest.hexdigest()


def _update_with_weights(digest: Any, weights: Sequence[np.ndarray]) -> None:
    for weight in weights:
        weight = np.ascontiguousarray(weight)
        digest.update(f"{weight.dtype.str}{weight.shape}".encode())
        digest.update(weight.tobytes())


def content_hash(metadata: ModelMetadata, weights_digest: str, graphs: dict[str, GraphVariants]) -> str:
    """Return the content hash of a format-2 model (see the module docstring).

    Parameters
    ----------
    metadata : `rbnodia.nn.ModelMetadata`
        The model's metadata (its hashed settings count).
    weights_digest : `str`
        `weights_sha256` of the weights.
    graphs : `dict` [`str`, `rbnodia.nn.onnx.runtime.GraphVariants`]
        The inference graphs by role.

    Returns
    -------
    digest : `str`
        The hex digest.
    """
    settings = metadata.hashed_settings()
    settings.update(threshold=float(settings["threshold"]), stamp_size=int(settings["stamp_size"]))
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True).encode())
    digest.update(weights_digest.encode())
    for role in sorted(graphs):
        variants = graphs[role]
        plain = hashlib.sha256(variants.plain).hexdigest()
        folded = hashlib.sha256(variants.folded).hexdigest() if variants.folded is not None else ""
        digest.update(json.dumps([role, variants.fold, plain, folded]).encode())
    return digest.hexdigest()


def legacy_content_hash(metadata: ModelMetadata, weights: Sequence[np.ndarray]) -> str:
    """Return the content hash of a format-1 model: settings (no threshold) and weights.

    Parameters
    ----------
    metadata : `rbnodia.nn.ModelMetadata`
        The model's metadata.
    weights : `~collections.abc.Sequence` [`numpy.ndarray`]
        The network's weights.

    Returns
    -------
    digest : `str`
        The hex digest.
    """
    digest = hashlib.sha256()
    settings = {k: getattr(metadata, k) for k in ("architecture", "layout", "stacking", "stamp_size",
                                                   "scaling_version")}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    _update_with_weights(digest, weights)
    return digest.hexdigest()


def write_model_file(header: dict[str, Any], keras: bytes, graphs: dict[str, GraphVariants]) -> bytes:
    """Return the bytes of a model file; ``header`` gets ``format_version`` and ``graphs``.

    Parameters
    ----------
    header : `dict` [`str`, `object`]
        The metadata to write as ``metadata.json``.
    keras : `bytes`
        The ``.keras`` archive of the network.
    graphs : `dict` [`str`, `rbnodia.nn.onnx.runtime.GraphVariants`]
        The inference graphs by role.

    Returns
    -------
    data : `bytes`
        The model file.
    """
    manifest = {role: {"fold": variants.fold} for role, variants in sorted(graphs.items())}
    header = {"format_version": FORMAT_VERSION, **header, "graphs": manifest}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps(header, indent=2))
        archive.writestr("model.keras", keras)
        for role, variants in sorted(graphs.items()):
            archive.writestr(graph_member(role), variants.plain)
            if variants.folded is not None:
                archive.writestr(graph_member(role, variants.fold), variants.folded)
    return buffer.getvalue()


def _limit(name: str) -> int:
    if name in MEMBER_LIMITS:
        return MEMBER_LIMITS[name]
    return MEMBER_LIMITS["graphs/"] if name.startswith("graphs/") else MEMBER_LIMITS[""]


def _open_archive(data: bytes, source: str, what: str) -> zipfile.ZipFile:
    """Return the zip archive in ``data``, its members' count and sizes checked."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as err:
        if what == "the file":
            message = f"Not an rbnodia model file: {source} is not a zip archive ({err})."
        else:
            message = f"Not a valid network in {source}: {what} is not a Keras archive ({err})."
        raise ModelFileError(message) from None
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"Invalid model file {source}: {what} holds {len(infos)} members, more than "
                             f"the {MAX_MEMBERS} allowed.")
    total = sum(info.file_size for info in infos)
    if total > TOTAL_LIMIT:
        raise ModelFileError(f"Invalid model file {source}: {what} inflates to {total} bytes, more than the "
                             f"{TOTAL_LIMIT} allowed; refusing to read it.")
    for info in infos:
        limit = _limit(info.filename) if what == "the file" else MEMBER_LIMITS[""]
        if info.file_size > limit:
            raise ModelFileError(f"Invalid model file {source}: {info.filename} in {what} inflates to "
                                 f"{info.file_size} bytes, more than the {limit} allowed; refusing to read "
                                 "it.")
    return archive


def _read_member(archive: zipfile.ZipFile, name: str, source: str) -> bytes:
    """Member ``name``, read with a bounded reader (its declared size was checked)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"Not an rbnodia model file: {source} has no {name}.") from None
    limit = _limit(name)
    try:
        with archive.open(info) as stream:
            data = stream.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as err:
        raise ModelFileError(f"Invalid model file {source}: {name} cannot be read ({err}).") from None
    if len(data) > limit:
        raise ModelFileError(f"Invalid model file {source}: {name} inflates to more than the {limit} bytes "
                             f"allowed; refusing to read it.")
    return data


def _parse_header(raw: bytes, source: str) -> tuple[dict[str, Any], int]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"Invalid model file {source}: metadata.json is not valid JSON ({err}).") \
            from None
    if not isinstance(header, dict):
        raise ModelFileError(f"Invalid model file {source}: metadata.json must hold a JSON object, "
                             f"not a {type(header).__name__}.")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problem = "is missing" if "format_version" not in header else \
            f"must be a positive integer, got {version!r} ({type(version).__name__})"
        raise ModelFileError(f"Invalid model file {source}: metadata.json field 'format_version' {problem}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"Model file {source} has format {version}, newer than this rbnodia understands "
                             f"({FORMAT_VERSION}); upgrade rbnodia.")
    return header, version


def _read_graphs(archive: zipfile.ZipFile, header: dict[str, Any], source: str) -> dict[str, GraphVariants]:
    manifest = header.get("graphs")
    if not isinstance(manifest, dict):
        raise ModelFileError(f"Invalid model file {source}: metadata.json field 'graphs' must be a JSON "
                             f"object, got {manifest!r}.")
    graphs = {}
    for role, entry in manifest.items():
        fold = entry.get("fold") if isinstance(entry, dict) else None
        if not isinstance(fold, int) or isinstance(fold, bool) or fold < 0 or fold == 1:
            raise ModelFileError(f"Invalid model file {source}: metadata.json field 'graphs' entry {role!r} "
                                 f"needs a fold of 0 or more than 1, got {entry!r}.")
        folded = _read_member(archive, graph_member(role, fold), source) if fold else None
        graphs[role] = GraphVariants(_read_member(archive, graph_member(role), source), folded, fold)
    return graphs


def read_model_file(data: bytes, source: str) -> ModelFileContents:
    """Return the parts of a model file, each member's size, the header's JSON
    structure, format version and digests checked (the metadata's values
    are checked by `rbnodia.nn.metadata.metadata_from_header`).

    Parameters
    ----------
    data : `bytes`
        The file's bytes.
    source : `str`
        Where they come from, for messages.

    Returns
    -------
    contents : `ModelFileContents`
        Header, format version, Keras archive, graphs and digest.

    Raises
    ------
    ModelFileError
        Naming ``source`` and what is wrong.
    """
    archive = _open_archive(data, source, "the file")
    header, version = _parse_header(_read_member(archive, "metadata.json", source), source)
    keras = _read_member(archive, "model.keras", source)
    if version == 1:
        return ModelFileContents(header, version, keras, {}, "")
    digest = header.get("weights_sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise ModelFileError(f"Invalid model file {source}: metadata.json field 'weights_sha256' must be a "
                             f"SHA-256 hex digest, got {digest!r}.")
    return ModelFileContents(header, version, keras, _read_graphs(archive, header, source), digest)


def check_keras_archive(keras: bytes, source: str) -> None:
    """Raise `ModelFileError` unless ``keras`` looks like a Keras archive
    (a zip with a config and weights, within the size limits) — checked
    without TensorFlow; Keras itself checks the rest when it loads.

    Parameters
    ----------
    keras : `bytes`
        The ``model.keras`` member.
    source : `str`
        The model file, for messages.
    """
    archive = _open_archive(keras, source, "model.keras")
    names = set(archive.namelist())
    missing = [name for name in _KERAS_MEMBERS if name not in names]
    if missing:
        raise ModelFileError(f"Not a valid network in {source}: model.keras lacks {', '.join(missing)}.")

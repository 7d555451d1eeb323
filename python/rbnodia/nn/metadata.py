"""The metadata of a model file, and the checks every value passes before
a model is used or written.

`ModelMetadata` is what a user of a model needs besides the network:
layout, stacking, stamp size, scaling recipe, decision threshold, and the
record of how the model was trained and tested.  `metadata_from_header`
builds it from a file's ``metadata.json`` and refuses, in one
`ModelFileError` that names the file and every bad field, anything a model
could not be used correctly with (a threshold that is NaN or outside
[0, 1], an unknown layout, an even or negative stamp size, a string where a
number belongs, a JSON list instead of an object, a missing name).
"""

from __future__ import annotations

__all__ = ["HASHED_FIELDS", "ModelFileError", "ModelMetadata", "check_metadata", "metadata_from_header"]

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from ..core.layouts import Layout, Stacking
from ..core.scaling import SCALING_VERSION

HASHED_FIELDS = ("architecture", "layout", "stacking", "stamp_size", "scaling_version", "threshold")
"""Metadata fields that change a model's output, covered by its content hash."""


class ModelFileError(ValueError):
    """A model file is unreadable, invalid, inconsistent or unsafe; the
    message names the file.
    """


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
        Stamp width/height in pixels (odd, at least 3).
    scaling_version : `str`
        Scaling recipe the network was trained with.
    threshold : `float`
        Default decision threshold on ``score`` (P(real)), in [0, 1]:
        ``is_real`` is ``score >= threshold``.
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
        SHA-256 of the `HASHED_FIELDS`, the weights and the inference
        graphs (filled on save/load; see `rbnodia.nn.modelfile`).
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
        """Return a JSON-ready dictionary.

        Returns
        -------
        data : `dict` [`str`, `object`]
            Every field.
        """
        return dataclasses.asdict(self)

    def hashed_settings(self) -> dict[str, Any]:
        """Return the `HASHED_FIELDS` and their values.

        Returns
        -------
        settings : `dict` [`str`, `object`]
            Field name -> value of the fields that change a model's outputs.
        """
        return {name: getattr(self, name) for name in HASHED_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        """Build metadata from `to_dict`'s output, ignoring unknown keys from newer writers
        (no checks: see `metadata_from_header`).

        Parameters
        ----------
        data : `dict` [`str`, `object`]
            Field name -> value.

        Returns
        -------
        metadata : `ModelMetadata`
            The metadata.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _name(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def _choice(allowed: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if isinstance(value, str) and value in allowed else f"must be one of {list(allowed)}"

    return check


def _stamp_size(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return "must be an integer"
    return None if value >= 3 and value % 2 == 1 else "must be an odd number of pixels, at least 3"


def _probability(value: Any) -> str | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "must be a number"
    return None if math.isfinite(value) and 0.0 <= value <= 1.0 else "must be a finite number in [0, 1]"


def _mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be a JSON object"


def _hash(value: Any) -> str | None:
    hexadecimal = set("0123456789abcdef")
    if isinstance(value, str) and (value == "" or (len(value) == 64 and set(value) <= hexadecimal)):
        return None
    return "must be 64 lowercase hexadecimal digits"


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "name": _name,
    "architecture": _name,
    "layout": _choice(tuple(layout.value for layout in Layout)),
    "stacking": _choice(tuple(stacking.value for stacking in Stacking)),
    "stamp_size": _stamp_size,
    "scaling_version": _name,
    "threshold": _probability,
    "threshold_method": _text,
    "training": _mapping,
    "metrics": _mapping,
    "libraries": _mapping,
    "created": _text,
    "content_hash": _hash,
}


def _problems(values: dict[str, Any]) -> list[str]:
    problems = []
    for name, check in _CHECKS.items():
        if name in values:
            value = values[name]
            problem = check(value)
            if problem:
                problems.append(f"field {name!r} {problem}, got {value!r} ({type(value).__name__})")
    return problems


def check_metadata(metadata: ModelMetadata) -> list[str]:
    """List what is wrong with ``metadata``'s values (an empty list if nothing).

    Parameters
    ----------
    metadata : `ModelMetadata`
        The metadata to check.

    Returns
    -------
    problems : `list` [`str`]
        One sentence per invalid field.
    """
    return _problems(metadata.to_dict())


def metadata_from_header(header: Any, source: str, required: tuple[str, ...] = ("name",)) -> ModelMetadata:
    """Return the `ModelMetadata` of a parsed ``metadata.json``, every value checked.

    Parameters
    ----------
    header : `object`
        The parsed JSON.
    source : `str`
        The model file, for messages.
    required : `tuple` [`str`]
        Fields the file must have (besides ``name``, ``architecture`` and
        ``layout``, which every model file has); others take their defaults.

    Returns
    -------
    metadata : `ModelMetadata`
        The checked metadata.

    Raises
    ------
    ModelFileError
        Naming the file and every missing or invalid field, if any.
    """
    if not isinstance(header, dict):
        raise ModelFileError(f"Invalid model file {source}: metadata.json must hold a JSON object, "
                             f"not a {type(header).__name__}.")
    needed = dict.fromkeys(("name", "architecture", "layout") + tuple(required))
    problems = [f"field {name!r} is missing" for name in needed if name not in header]
    problems += _problems(header)
    if problems:
        raise ModelFileError(f"Invalid model file {source}: metadata.json " + "; ".join(problems) + ".")
    return ModelMetadata.from_dict(header)

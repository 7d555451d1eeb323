"""``rbnodia convert-model``: rewrite a model file in the current format,
with the inference graphs that let pipelines classify without TensorFlow.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

import argparse
import sys
from pathlib import Path

from .arguments import Command


def _convert(args) -> int:
    from ..nn.model import convert_model_file, load_model

    source, destination = Path(args.source), Path(args.destination)
    if not source.exists():
        raise FileNotFoundError(f"No model file {str(source)!r}.")
    if destination.exists() and not args.clobber and destination.resolve() != source.resolve():
        raise FileExistsError(f"{destination} exists; pass --clobber to replace it.")
    try:
        model = convert_model_file(source, destination)
    except ImportError as err:
        print(f"rbnodia convert-model: error: {err}", file=sys.stderr)
        return 1
    written = load_model(destination)  # read back: the hash and every graph check out
    graphs = ", ".join(f"{role}{' (+ folded by ' + str(v.fold) + ')' if v.fold else ''}"
                       for role, v in written.graphs.items()) or "none (using it needs TensorFlow)"
    print(f"Wrote {destination}: {model.version}; graphs: {graphs}")
    return 0


def _convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="Model file to read (.rbmodel).")
    parser.add_argument("destination", help="Model file to write (may be the source).")
    parser.add_argument("--clobber", action="store_true", help="Replace the destination if it exists.")


COMMANDS = (
    Command(
        "convert-model",
        help="Rewrite a model file in the current format, with its ONNX inference graphs (needs [train]).",
        description="Read a model file (any format), translate its Keras network into the ONNX graphs "
        "inference and saliency run on, and write it in the current format: weights and metadata are kept, "
        "the version changes with the graphs.  Needs TensorFlow, Keras and onnx (the [train] extra); the "
        "file written needs neither to classify.",
        run=_convert,
        arguments=_convert_arguments,
    ),
)

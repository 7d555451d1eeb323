"""``rbnodia put-model``: put a model into a Butler collection, where the
pipelines' ``modelSource=butler`` (and ApPipe's ``computeReliability``)
find it.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

import argparse
import json
import os

from .arguments import Command


def _put_model(args: argparse.Namespace) -> int:
    from lsst.daf.butler import Butler

    from ..butler.environment import environment
    from ..butler.repo import pretrained_model_collection, put_model
    from ..nn.model import load_model, packaged_model_names

    # The storage class must resolve even for a repository made without
    # rbnodia's seed config: the documented `rbnodia env` setup, applied here.
    os.environ.update({key: value for key, value in environment().items() if key == "DAF_BUTLER_CONFIG_PATH"})
    model = load_model(args.model)
    name = args.model if args.model in packaged_model_names() else model.metadata.name
    collection = args.collection or pretrained_model_collection(name)
    butler = Butler.from_config(args.repo, writeable=True)
    ref = put_model(butler, model, collection)
    print(json.dumps({"model": model.version, "collection": collection, "dataset_type": ref.datasetType.name,
                      "id": str(ref.id)}, indent=2))
    return 0


def _put_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", help="Butler repository.")
    parser.add_argument("model", help="Packaged model name (rbnodia info) or path of a .rbmodel file.")
    parser.add_argument("--collection", help="RUN collection (default pretrained_models/rbnodia_<name>).")


COMMANDS = (
    Command(
        "put-model",
        help="Put a model (packaged name or .rbmodel file) into a Butler RUN collection as rbnodia_model.",
        description="Write MODEL as the dimensionless rbnodia_model dataset of a new RUN collection "
        "(default pretrained_models/rbnodia_<name>: the packaged model's name, or the name in a model "
        "file's metadata).  Pipelines with modelSource=butler, such as "
        "ComputeReliability.yaml, then use it when that collection is in their -i.",
        run=_put_model,
        arguments=_put_model_arguments,
    ),
)

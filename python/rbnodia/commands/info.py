"""``rbnodia info`` and ``rbnodia env``: what is installed, and the
environment a pip install needs for the Butler and pipelines.

``rbnodia info --models --format rst`` (or ``markdown``) prints the packaged
models' table from their files' metadata: the documentation includes it from
``doc/_generated/packaged_models.rst`` (``make doc-tables`` rewrites it), so
that no figure about a packaged model is typed by hand.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "environment", "model_rows", "package_dir", "render_model_table"]

import argparse
import json
import math
import sys
from collections.abc import Sequence

from ..butler.environment import environment, package_dir
from .arguments import Command

_FORMATS = ("text", "rst", "markdown")
_COLUMNS = (
    "model", "network", "layout", "scaling", "version", "threshold", "test stamps", "test accuracy",
    "ROC AUC", "TP rate", "TN rate", "FPR at 1% FNR", "epochs", "training stamps", "initial weights",
)


def _fixed(value: object, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def model_rows(names: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Describe packaged models from their files' metadata.

    Parameters
    ----------
    names : `~collections.abc.Sequence` [`str`], optional
        Packaged model names; default all of them.

    Returns
    -------
    rows : `list` [`dict` [`str`, `str`]]
        One row per model, keyed by the table's column names, values
        formatted for the table.  Accuracy carries its binomial standard
        error on the test set.
    """
    from ..nn.model import load_model, packaged_model_names, packaged_model_path

    rows = []
    for name in names if names is not None else packaged_model_names():
        model = load_model(packaged_model_path(name))
        meta = model.metadata
        test = meta.metrics.get("test", {})
        training = meta.training or {}
        n_test = test.get("n")
        accuracy = test.get("accuracy")
        if accuracy is not None and n_test:
            error = math.sqrt(accuracy * (1.0 - accuracy) / n_test)
            accuracy_text = f"{accuracy:.3f} +- {error:.3f}"
        else:
            accuracy_text = _fixed(accuracy)
        rows.append({
            "model": name,
            "network": meta.architecture,
            "layout": meta.layout,
            "scaling": meta.scaling_version,
            "version": model.version,
            "threshold": f"{meta.threshold:.3f} ({meta.threshold_method})",
            "test stamps": f"{n_test:,}" if n_test else "n/a",
            "test accuracy": accuracy_text,
            "ROC AUC": _fixed(test.get("roc_auc")),
            "TP rate": _fixed(test.get("tp_rate")),
            "TN rate": _fixed(test.get("tn_rate")),
            "FPR at 1% FNR": _fixed(test.get("fpr_at_fnr_1pct")),
            "epochs": str(training.get("epochs_run", "n/a")),
            "training stamps": f"{training['data']['n']:,}" if "data" in training else "n/a",
            "initial weights": training.get("initial_weights", {}).get("version", "random"),
        })
    return rows


def _literal(row: dict[str, str], column: str, quote: str) -> str:
    # Names as code (``name@hash`` would otherwise read as an e-mail address).
    value = row[column]
    named = column in ("model", "network", "version") or (column == "initial weights" and "@" in value)
    return f"{quote}{value}{quote}" if named else value


def render_model_table(rows: Sequence[dict[str, str]], fmt: str) -> str:
    """Format `model_rows` as a reStructuredText or Markdown table.

    Parameters
    ----------
    rows : `~collections.abc.Sequence` [`dict` [`str`, `str`]]
        Rows from `model_rows`.
    fmt : `str`
        ``rst`` (a ``list-table``) or ``markdown``.

    Returns
    -------
    table : `str`
        The table, ending in a newline, headed by a comment naming the
        command that wrote it.
    """
    command = f"rbnodia info --models --format {fmt}"
    if fmt == "markdown":
        lines = [f"<!-- Written by `{command}` from the model files' metadata. -->", "",
                 "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        lines += ["| " + " | ".join(_literal(row, c, "`") for c in _COLUMNS) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    if fmt != "rst":
        raise ValueError(f"Unknown table format {fmt!r}; choose rst or markdown.")
    lines = [f".. Written by ``{command}`` from the model files' metadata; do not edit.", "",
             ".. list-table::", "   :header-rows: 1", ""]
    for cells in [list(_COLUMNS)] + [[_literal(row, c, "``") for c in _COLUMNS] for row in rows]:
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {cell}" for cell in cells[1:]]
    return "\n".join(lines) + "\n"


def _print_text(args) -> None:
    from ..nn.architectures import architecture_names, get_architecture
    from ..nn.model import load_model, packaged_model_names, packaged_model_path
    from ..version import __version__

    root = package_dir()
    print(f"rbnodia {__version__}")
    print(f"pipelines: {root / 'pipelines'}")
    for yaml in sorted((root / "pipelines").glob("*.yaml")):
        print(f"  {yaml.name}")
    print("architectures:")
    for name in architecture_names():
        arch = get_architecture(name)
        print(f"  {name:20s} {arch.layout.value:6s} {arch.description}")
    print("packaged models:")
    for name in packaged_model_names():
        if args.models:
            model = load_model(packaged_model_path(name))
            meta = model.metadata
            print(f"  {name:16s} {model.version}  layout={meta.layout} scaling={meta.scaling_version} "
                  f"threshold={meta.threshold:.3f} "
                  f"({meta.threshold_method})")
            print("    metrics:", json.dumps(meta.metrics.get("test", meta.metrics), default=str)[:300])
        else:
            print(f"  {name}")


def _info(args) -> int:
    if args.format == "text":
        _print_text(args)
        return 0
    if not args.models:
        print(f"rbnodia info: --format {args.format} prints the packaged models' table; add --models.",
              file=sys.stderr)
        return 2
    print(render_model_table(model_rows(), args.format), end="")
    return 0


def _env(args) -> int:
    for key, value in environment().items():
        print(f'export {key}="{value}"')
    return 0


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", action="store_true",
                        help="Load each packaged model and show its metadata.")
    parser.add_argument(
        "--format", choices=_FORMATS, default="text",
        help="text: everything, for people; rst or markdown: only the packaged models' table (with "
        "--models), as the documentation includes it.",
    )


COMMANDS = (
    Command(
        "info",
        help="Show pipelines, architectures and packaged models.",
        run=_info,
        arguments=_info_arguments,
    ),
    Command(
        "env",
        help="Print shell exports for RBNODIA_DIR and DAF_BUTLER_CONFIG_PATH (eval \"$(rbnodia env)\").",
        run=_env,
    ),
)

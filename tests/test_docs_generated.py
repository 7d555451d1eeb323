"""The documentation's generated parts match what generates them.

- ``doc/_generated/packaged_models.rst`` is what ``rbnodia info --models
  --format rst`` prints from the packaged model files (``make doc-tables``
  rewrites it): a retrained or replaced model fails this test until the
  table is regenerated, so no figure about a packaged model drifts.
- Every module of the package is on an API page (``doc/api/``).
- ``doc/_generated/bench_results.rst``, which ``doc/performance.rst``
  includes, is the output of the benchmark script.
"""

import re
from pathlib import Path

import pytest

from rbnodia.cli import main
from rbnodia.commands.info import model_rows, render_model_table
from rbnodia.nn.model import load_model, packaged_model_names, packaged_model_path

REPO = Path(__file__).resolve().parents[1]
GENERATED = REPO / "doc" / "_generated"


def test_packaged_models_table_is_current(capsys):
    assert main(["info", "--models", "--format", "rst"]) == 0
    printed = capsys.readouterr().out
    committed = (GENERATED / "packaged_models.rst").read_text()
    assert printed == committed, "doc/_generated/packaged_models.rst is out of date: run `make doc-tables`"


@pytest.mark.parametrize("name", packaged_model_names())
def test_table_rows_come_from_the_model_files(name):
    meta = load_model(packaged_model_path(name)).metadata
    test = meta.metrics["test"]
    [row] = model_rows([name])
    assert row["network"] == meta.architecture
    assert row["layout"] == meta.layout and row["scaling"] == meta.scaling_version
    assert row["test accuracy"].startswith(f"{test['accuracy']:.3f} +- ")
    assert row["ROC AUC"] == f"{test['roc_auc']:.3f}"
    assert row["FPR at 1% FNR"] == f"{test['fpr_at_fnr_1pct']:.3f}"
    assert row["test stamps"] == f"{test['n']:,}"
    assert row["initial weights"] == meta.training.get("initial_weights", {}).get("version", "random")
    markdown = render_model_table([row], "markdown")
    table_rows = [line for line in markdown.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(table_rows) == 1 and row["ROC AUC"] in table_rows[0]


def test_table_format_needs_models(capsys):
    assert main(["info", "--format", "markdown"]) == 2
    assert "--models" in capsys.readouterr().err


def test_unknown_table_format_rejected():
    with pytest.raises(ValueError, match="rst or markdown"):
        render_model_table([], "html")


def _modules() -> list[str]:
    package = REPO / "python" / "rbnodia"
    return sorted(
        ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for path in package.rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    )


def test_every_module_is_in_the_api_reference():
    pages = "\n".join(page.read_text() for page in (REPO / "doc" / "api").glob("*.rst"))
    documented = set(re.findall(r"^\.\. automodapi:: (\S+)$", pages, re.MULTILINE))
    missing = [module for module in _modules() if module not in documented]
    assert not missing, f"add these modules to a page of doc/api/: {missing}"
    index = (REPO / "doc" / "index.rst").read_text()
    for page in (REPO / "doc" / "api").glob("*.rst"):
        assert f"api/{page.stem}" in index, f"doc/api/{page.name} is not in doc/index.rst's toctree"


def test_bench_results_are_generated():
    text = (GENERATED / "bench_results.rst").read_text()
    assert text.startswith(".. Written by ``make bench")
    assert ".. list-table::" in text
    if "smoke sizes" in text:  # a smoke run is marked as such
        assert ".. warning::" in text and "figures mean nothing" in text
    assert "include:: _generated/bench_results.rst" in (REPO / "doc" / "performance.rst").read_text()

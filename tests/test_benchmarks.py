"""The benchmark script runs at smoke size and prints every section.

CI runs this so that ``benchmarks/run_benchmarks.py`` cannot rot.  Nothing
here asserts a timing: the machine running the tests may be slow or busy.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "run_benchmarks.py"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--doc-table",
                           str(out / "doc" / "bench_results.rst")], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=1800)
    return done, out


def test_exits_zero(smoke_run):
    done, _ = smoke_run
    assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"


@pytest.mark.parametrize("section", [1, 2, 3, 4, 5, 6])
def test_prints_every_section(smoke_run, section):
    done, out = smoke_run
    assert f"== section {section}:" in done.stdout
    table = done.stdout.split("rbnodia benchmark results", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith(f"{section}.")]
    assert rows, f"no figures of section {section} in the table"
    assert all(f"--sections {section}" in row for row in rows), "every figure names its command"
    figures = json.loads((out / "results.json").read_text())["figures"]
    assert any(f["section"] == section for f in figures)


def test_search_section_writes_its_table_and_plot(smoke_run):
    """Section 6 writes every path's row for both presets, and the completeness plot."""
    _, out = smoke_run
    results = json.loads((out / "search" / "search.json").read_text())
    assert {r["preset"] for r in results} == {"lsst", "des"}
    table = (out / "search" / "search_comparison.rst").read_text()
    assert table.count(".. list-table::") == 3  # one per preset, then the targets
    rows = ["DIA detection + nodia_default", "DIA detection + dia_default",
            *(f"search ({design} design) + {model}" for design in ("excess", "science")
              for model in results[0]["search_models"])]
    for row in rows:
        assert table.count(f"* - {row}\n") == 2, row
    targets = table.split(".. list-table:: Targets:", 1)[1]
    assert targets.count("   * - ") == 6  # a header and five rows
    for target in ("Completeness at S/N >= 10", "False positives per detector no more",
                   "CPU time per detector"):
        assert targets.count(f"* - {target}") == 1, target
    assert targets.count(", met") + targets.count(", missed") == 6  # each target, each preset
    assert (out / "search" / "search_completeness.png").stat().st_size > 10_000


def test_writes_markdown_and_json(smoke_run):
    _, out = smoke_run
    data = json.loads((out / "results.json").read_text())
    assert data["environment"]["smoke"] is True
    assert "load_average_start" in data["environment"]
    for figure in data["figures"]:
        assert figure["command"].startswith(".venv/bin/python benchmarks/run_benchmarks.py")
    markdown = (out / "results.md").read_text()
    assert markdown.count("\n| ") >= len(data["figures"])
    rst = (out / "results.rst").read_text()
    assert rst.startswith(".. list-table::")
    assert rst.count("\n   * - ") == len(data["figures"]) + 1  # header row + one row per figure
    for figure in data["figures"]:
        assert f"``{figure['id']}``" in rst


def test_writes_the_doc_include(smoke_run):
    """``--doc-table`` writes what doc/performance.rst includes: the command that
    regenerates it, a warning for smoke runs, the run's conditions, the table.
    """
    _, out = smoke_run
    data = json.loads((out / "results.json").read_text())
    text = (out / "doc" / "bench_results.rst").read_text()
    assert text.startswith('.. Written by ``make bench BENCH_ARGS="--smoke"``; do not edit.')
    assert ".. warning::" in text and "smoke run" in text
    assert f"at git commit ``{data['environment']['git']}``" in text
    assert data["environment"]["date"] not in text  # no timestamps in the documentation
    table = text[text.index(".. list-table::"):]
    assert table == (out / "results.rst").read_text()
    assert not list((out / "doc").glob("*.partial"))


def test_bad_sections_rejected():
    done = subprocess.run([sys.executable, str(SCRIPT), "--sections", "9"], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode != 0 and "unknown sections" in done.stderr


@pytest.mark.parametrize("script, arguments, expected", [
    ("bench_saliency.py", ["--batch-size", "16", "--batches", "1", "--repeats", "1", "--architectures",
                           "improved_nodia_fast", "--packaged"], "worst ratio to predict"),
    ("bench_threading.py", ["--models", "improved_nodia_fast", "--batches", "16", "--stamps", "16",
                            "--repeats", "1"], "improved_nodia_fast saliency"),
])
def test_side_benchmarks_run(script, arguments, expected):
    """The stand-alone benchmarks quoted in doc/performance.rst still run."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *arguments], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout

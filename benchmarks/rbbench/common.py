"""Figures, timing and the one results table shared by all sections.

The module passes 500 lines through its docstrings (about half of it): the
`Figure` constructors and the table writers document every field.
"""

from __future__ import annotations

__all__ = [
    "Figure",
    "Timing",
    "best_time",
    "best_times_per_stamp",
    "environment",
    "format_number",
    "load_average",
    "paper_models",
    "render_doc_include",
    "render_markdown",
    "render_rst",
    "render_table",
    "section_command",
]

import dataclasses
import datetime
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rbnodia.nn import RealBogusModel

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "benchmarks/run_benchmarks.py"
PAPER_LABELS = {"paper_nodia": "noDIA", "paper_dia": "DIA"}
"""The paper's architectures, in the order measured, and their names in figure ids."""


@dataclasses.dataclass
class Figure:
    """One measured number, its baseline from the same run, and a reference.

    Attributes
    ----------
    id : `str`
        Stable identifier, ``<section>.<name>``.
    section : `int`
        Section number (1-5).
    what : `str`
        What was measured, in words.
    value : `float`
        The measurement.
    unit : `str`
        Its unit.
    baseline : `float` or `None`
        The baseline measured in the same run (same unit).
    baseline_label : `str`
        What the baseline is.
    ratio : `float` or `None`
        The comparison with the baseline; ``ratio_label`` says which way.
    ratio_label : `str`
        E.g. ``x faster`` (baseline / value) or ``x baseline`` (value /
        baseline).
    reference : `float` or `None`
        A published or target figure (same unit), not measured here.
    reference_label : `str`
        What the reference is.
    vs_reference : `float` or `None`
        reference / value for times (> 1: faster than the reference).
    note : `str`
        How the figure was obtained (sizes, extrapolation, data).
    command : `str`
        The command that produced the figure.
    """

    id: str
    section: int
    what: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    ratio_label: str = ""
    reference: float | None = None
    reference_label: str = ""
    vs_reference: float | None = None
    note: str = ""
    command: str = ""

    @classmethod
    def time(cls, id: str, section: int, what: str, value: float, unit: str, *, baseline: float | None = None,
             baseline_label: str = "", reference: float | None = None, reference_label: str = "",
             note: str = "", command: str = "") -> Figure:
        """Return a time (lower is better): ratio = baseline / value ("x faster").

        Parameters
        ----------
        id, section, what, value, unit
            The figure's attributes of these names.
        baseline, baseline_label, reference, reference_label, note, command : optional
            Likewise; ``ratio`` and ``vs_reference`` are computed from them.

        Returns
        -------
        figure : `Figure`
            The figure, its ratios computed.
        """
        ratio = None if baseline is None or not value else baseline / value
        return cls._measured(id, section, what, value, unit, baseline, baseline_label, ratio,
                             "x faster than baseline", reference, reference_label, note, command)

    @classmethod
    def amount(cls, id: str, section: int, what: str, value: float, unit: str, *,
               baseline: float | None = None, baseline_label: str = "", reference: float | None = None,
               reference_label: str = "", note: str = "", command: str = "") -> Figure:
        """Return a cost or size: ratio = value / baseline ("x baseline").

        Parameters
        ----------
        id, section, what, value, unit
            As for `time`.
        baseline, baseline_label, reference, reference_label, note, command : optional
            As for `time`.

        Returns
        -------
        figure : `Figure`
            The figure, its ratios computed.
        """
        ratio = None if not baseline else value / baseline
        return cls._measured(id, section, what, value, unit, baseline, baseline_label, ratio, "x baseline",
                             reference, reference_label, note, command)

    @classmethod
    def _measured(cls, id, section, what, value, unit, baseline, baseline_label, ratio, ratio_label,
                  reference, reference_label, note, command) -> Figure:
        """Build the figure of `time` and `amount`, which compare with the
        baseline each their own way; ``vs_reference`` is reference / value.
        """
        vs_reference = None if reference is None or not value else reference / value
        return cls(id, section, what, value, unit, baseline, baseline_label, ratio, ratio_label,
                   reference, reference_label, vs_reference, note, command)


@dataclasses.dataclass(frozen=True)
class Timing:
    """Best-of-n wall-clock and CPU seconds of one call."""

    wall: float
    cpu: float


def best_time(function: Callable[[], object], repeats: int = 3, warmup: int = 1) -> Timing:
    """Run ``function`` ``warmup`` times untimed, then keep the fastest of ``repeats``.

    The minimum is the least disturbed by other processes on a shared machine.

    Parameters
    ----------
    function : `~collections.abc.Callable`
        What to time, called without arguments.
    repeats : `int`, optional
        Timed calls.
    warmup : `int`, optional
        Untimed calls first.

    Returns
    -------
    timing : `Timing`
        Wall-clock and CPU seconds of the fastest timed call.
    """
    return best_times_interleaved([function], repeats, warmup)[0]


def best_times_interleaved(functions: list[Callable[[], object]], repeats: int = 3,
                           warmup: int = 1) -> list[Timing]:
    """Run `best_time` for several functions whose times are compared: their runs
    alternate (A B A B ...), so that a slow spell of a shared machine hits
    all of them rather than one, and the ratios stay steady.

    Parameters
    ----------
    functions : `list` [`~collections.abc.Callable`]
        What to time, each called without arguments.
    repeats : `int`, optional
        Timed rounds.
    warmup : `int`, optional
        Untimed rounds first.

    Returns
    -------
    timings : `list` [`Timing`]
        The fastest call of each function, in the order given.
    """
    for _ in range(warmup):
        for function in functions:
            function()
    best = [Timing(float("inf"), float("inf")) for _ in functions]
    for _ in range(max(1, repeats)):
        for i, function in enumerate(functions):
            w0, c0 = time.perf_counter(), time.process_time()
            function()
            w1, c1 = time.perf_counter(), time.process_time()
            if w1 - w0 < best[i].wall:
                best[i] = Timing(w1 - w0, c1 - c0)
    return best


def best_times_per_stamp(functions: list[Callable[[], object]], stamps: int, repeats: int = 3,
                         scale: float = 1e3) -> list[tuple[float, float]]:
    """Run `best_times_interleaved` and return each function's wall-clock
    and CPU time per stamp.

    Parameters
    ----------
    functions : `list` [`~collections.abc.Callable`]
        What to time, each called without arguments.
    stamps : `int`
        The stamps that one call processes.
    repeats : `int`, optional
        Timed rounds.
    scale : `float`, optional
        Units per second of the result (1e3: milliseconds, 1e6:
        microseconds).

    Returns
    -------
    times : `list` [`tuple` [`float`, `float`]]
        ``(wall, cpu)`` per stamp of the fastest call of each function, in
        the order given.
    """
    timings = best_times_interleaved(functions, repeats)
    return [(scale * t.wall / stamps, scale * t.cpu / stamps) for t in timings]


def paper_models() -> Iterator[tuple[str, str, RealBogusModel]]:
    """Yield the paper's networks (`PAPER_LABELS`), each made when its turn
    comes, with untrained weights: the cost of a call does not depend on
    their values.

    Yields
    ------
    arch : `str`
        The architecture name (``paper_nodia``, then ``paper_dia``).
    label : `str`
        Its name in figure ids (``noDIA``, ``DIA``).
    model : `rbnodia.nn.RealBogusModel`
        The model, its weights as initialised.
    """
    from rbnodia.nn import RealBogusModel

    for arch, label in PAPER_LABELS.items():
        yield arch, label, RealBogusModel.from_architecture(arch)


def load_average() -> tuple[float, float, float]:
    """Return the 1, 5 and 15 minute load averages (zeros where unavailable).

    Returns
    -------
    load : `tuple` [`float`, `float`, `float`]
        The load averages.
    """
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, object]:
    """Describe the machine, software versions and load, recorded with the results.

    Returns
    -------
    info : `dict` [`str`, `object`]
        Date, host, CPU model and count, Python, numpy and machine-learning
        library versions, git commit and the load average at the start.
    """
    import numpy

    info: dict[str, object] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "git": _git_commit(),
        "load_average_start": load_average(),
    }
    for name in ("tensorflow", "keras", "onnxruntime", "onnx"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = "not installed"
    return info


def section_command(section: int, smoke: bool, extra: Sequence[str] = ()) -> str:
    """Return the command line that reproduces one section's figures.

    Parameters
    ----------
    section : `int`
        Section number.
    smoke : `bool`
        Whether the run is at smoke sizes.
    extra : `~collections.abc.Sequence` [`str`], optional
        Further arguments.

    Returns
    -------
    command : `str`
        The shell command line.
    """
    parts = [".venv/bin/python", SCRIPT, "--sections", str(section)]
    if smoke:
        parts.append("--smoke")
    parts.extend(extra)
    return " ".join(shlex.quote(p) for p in parts)


def format_number(value: float | None, digits: int = 3) -> str:
    """Format a number compactly to significant digits (blank for `None`).

    Parameters
    ----------
    value : `float` or `None`
        The number.
    digits : `int`, optional
        Significant digits.

    Returns
    -------
    text : `str`
        The formatted number.
    """
    if value is None:
        return ""
    if math.isnan(value):
        return "nan"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10 ** digits:
        return f"{value:,.0f}"
    if magnitude >= 1e-3:
        text = f"{value:.{digits}g}"
        return text if "e" not in text else f"{value:.{digits - 1}f}"
    return f"{value:.2e}"


_HEADERS = ("id", "what", "value", "baseline (same run)", "vs baseline", "reference", "vs reference",
            "command")


def _rows(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    rows = []
    for f in figures:
        value = f"{format_number(f.value)} {f.unit}"
        baseline = ""
        if f.baseline is not None:
            baseline = f"{format_number(f.baseline)} {f.unit}: {f.baseline_label}"
        ratio = f"{format_number(f.ratio)} {f.ratio_label}" if f.ratio is not None else ""
        reference = f.reference_label
        if f.reference is not None:
            reference = f"{format_number(f.reference)} {f.unit}: {f.reference_label}"
        vs_ref = f"{format_number(f.vs_reference)}x" if f.vs_reference is not None else ""
        what = f.what + (f" [{f.note}]" if f.note else "")
        rows.append((f.id, what, value, baseline, ratio, reference, vs_ref, f.command))
    return rows


def render_table(figures: Sequence[Figure], header: str = "") -> str:
    """Return the one plain-text table printed at the end of a run.

    Parameters
    ----------
    figures : `~collections.abc.Sequence` [`Figure`]
        The figures of the run.
    header : `str`, optional
        A line printed above the table.

    Returns
    -------
    table : `str`
        The table; long cells are cut.
    """
    rows = _rows(figures)
    widths = [min(max([len(h)] + [len(r[i]) for r in rows]), 70) for i, h in enumerate(_HEADERS)]
    widths[-1] = max([len(_HEADERS[-1])] + [len(r[-1]) for r in rows])

    def line(cells):
        return " | ".join(
            (c if len(c) <= w else c[: w - 3] + "...").ljust(w) for c, w in zip(cells, widths)
        ).rstrip()

    out = [header] if header else []
    out.append(line(_HEADERS))
    out.append("-+-".join("-" * w for w in widths))
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def render_markdown(figures: Sequence[Figure], env: dict[str, object]) -> str:
    """Return the same table as Markdown, with the environment above it.

    Parameters
    ----------
    figures : `~collections.abc.Sequence` [`Figure`]
        The figures of the run.
    env : `dict` [`str`, `object`]
        The run's `environment`.

    Returns
    -------
    text : `str`
        The Markdown document.
    """
    lines = ["# rbnodia benchmarks", ""]
    lines += [f"- {key}: {value}" for key, value in env.items()]
    lines += ["", "| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
    for row in _rows(figures):
        cells = [c.replace("|", "\\|") for c in row]
        cells[-1] = f"`{cells[-1]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_rst(figures: Sequence[Figure], header: str = "") -> str:
    """Return the same table as a reStructuredText ``list-table`` (without the
    command column), for ``doc/performance.rst``.

    Parameters
    ----------
    figures : `~collections.abc.Sequence` [`Figure`]
        The figures of the run.
    header : `str`, optional
        A paragraph above the table.

    Returns
    -------
    text : `str`
        The ``list-table`` directive.
    """
    lines = [header, ""] if header else []
    lines += [".. list-table::", "   :header-rows: 1", "   :widths: 14 40 10 22 10 18 6", ""]
    for index, row in enumerate([_HEADERS[:-1]] + [r[:-1] for r in _rows(figures)]):
        cells = [c.replace("*", "\\*").replace("|", "\\|") if c else " " for c in row]
        if index:  # figure ids as literals
            cells[0] = f"``{row[0]}``"
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {cell}" for cell in cells[1:])
    return "\n".join(lines) + "\n"


def render_doc_include(figures: Sequence[Figure], env: dict[str, object], command: str) -> str:
    """Return the results as the reStructuredText include of ``doc/performance.rst``.

    Parameters
    ----------
    figures : `~collections.abc.Sequence` [`Figure`]
        The figures of the run.
    env : `dict` [`str`, `object`]
        The run's `environment`, with ``load_average_end``, ``seconds``,
        ``smoke`` and ``sections`` added.
    command : `str`
        The command line that regenerates the file.

    Returns
    -------
    text : `str`
        A comment naming the command, a warning for smoke runs, the machine,
        software and load of the run (no date), then `render_rst`'s table.
    """
    sections = ", ".join(str(s) for s in env.get("sections", []))
    lines = [f".. Written by ``{command}``; do not edit.", ""]
    if env.get("smoke"):
        lines += [".. warning::", "",
                  "   A smoke run (``--smoke``, tiny sizes): it shows that every section runs; the",
                  "   figures mean nothing.  ``make bench`` replaces this table with full-size figures.",
                  ""]
    start, end = env["load_average_start"][0], env["load_average_end"][0]
    versions = ", ".join(f"{name} {env[name]}" for name in ("python", "numpy", "tensorflow", "onnxruntime")
                         if name in env)
    lines += [
        f"Sections {sections}, {'smoke' if env.get('smoke') else 'full'} sizes, in {env['seconds']} s, "
        f"at git commit ``{env['git']}``, on {env['cpu']} ({env['cpus']} CPUs); {versions}.  Load average "
        f"{start:.2f} at the start and {end:.2f} at the end.",
        "",
    ]
    return "\n".join(lines) + "\n" + render_rst(figures)


def python_executable() -> str:
    """Return the interpreter running the benchmarks (used for worker processes).

    Returns
    -------
    path : `str`
        ``sys.executable``.
    """
    return sys.executable

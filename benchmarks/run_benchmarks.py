#!/usr/bin/env python
r"""Benchmarks of rbnodia: inference, a full detector, the avoided DIA cost,
pipetask end to end, and training time.

Prints ONE table: every figure with its baseline measured in the same run,
the ratio between them, a published reference where there is one (the
paper's 0.30 / 1.00 ms per stamp, its 15.5 CPU hours of DIA per DES
exposure), and the command that produced it.  Writes the table as
``results.json``, ``results.md`` and ``results.rst`` into ``--out``
(default ``bench_out/``), and with ``--doc-table PATH`` the table that
``doc/performance.rst`` includes (``make bench`` writes
``doc/_generated/bench_results.rst``).

Sections (``--sections 1,2,...``; default all):

1. Inference ms/stamp for the paper's noDIA and DIA networks at batch sizes
   1, 64, 1024 and 8192, TensorFlow and ONNX Runtime backends, against a
   naive per-stamp ``network.predict`` loop.
2. The classification task in memory on a full detector (LSST 4096x4096 with
   1,000 detections; DES 2048x4096 with 300): time with saliency off and on,
   the breakdown (cutouts, scaling, inference, saliency), peak memory;
   against a straightforward per-detection implementation.
3. The avoided cost: PSF-matched image subtraction (rbnodia.sim.subtract,
   Alard-Lupton) of the same detectors against noDIA classification of
   their detections.
4. ``pipetask run`` end to end on a simulated repository: start-up
   overhead and wall time per quantum, serially and with ``-j 2``, against
   a format-1 model file (TensorFlow in every process); import + model load
   in a cold process; peak RSS on a full LSST detector; the scores against
   the Keras network on TensorFlow.
5. Training time per epoch on 80,000 stamps for both networks,
   extrapolated from a measured fraction of an epoch.
6. The transient search with no difference image (`NoDiaSearchTask`)
   against the DIA path on the same simulated LSST and DES detectors:
   completeness, false positives per detector, time per step
   (`rbbench.search`); with ``--search-doc-dir`` its table and plot also go
   to that folder (``make bench``: ``doc/_generated``).

Full-size runs keep the simulated detectors in ``--out``/detectors (about
0.5 GB) and reuse them next time.  ``--smoke`` runs every section at tiny
sizes (what CI runs; the numbers then mean nothing).  Run with ``make bench`` or::

    .venv/bin/python benchmarks/run_benchmarks.py [--smoke] [--sections 1,2] [--out bench_out] \
        [--doc-table doc/_generated/bench_results.rst]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rbbench.common import (
    Figure,
    environment,
    load_average,
    render_doc_include,
    render_markdown,
    render_rst,
    render_table,
)
from rbbench.script import script_main

SECTIONS = {
    1: "Inference ms/stamp (paper networks, batch sizes, backends)",
    2: "Classification task in memory on a full detector",
    3: "Avoided cost: PSF-matched subtraction vs noDIA classification",
    4: "pipetask run end to end",
    5: "Training time per epoch (80,000 stamps)",
    6: "Search with no difference image vs the DIA path",
}


def _parse_sections(text: str) -> list[int]:
    try:
        sections = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"sections must be numbers like 1,2,5, got {text!r}") from None
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        raise argparse.ArgumentTypeError(f"unknown sections {unknown}; choose from {sorted(SECTIONS)}")
    return sections


def _bench_args(args: argparse.Namespace) -> list[str]:
    """Return the options of this run that ``make bench`` would need in ``BENCH_ARGS``."""
    extra = ["--smoke"] if args.smoke else []
    if args.sections != sorted(SECTIONS):
        extra += ["--sections", ",".join(str(s) for s in args.sections)]
    if args.synthetic:
        extra.append("--synthetic")
    return extra


def _run_section(number: int, args: argparse.Namespace) -> list[Figure]:
    if number == 1:
        from rbbench.inference import run_section

        return run_section(args.smoke)
    if number in (2, 3):
        from rbbench.detector import run_sections

        numbers = [n for n in (2, 3) if n in args.sections]
        return run_sections(numbers, args.smoke, synthetic=args.synthetic,
                            cache=None if args.smoke else args.out / "detectors")
    if number == 4:
        from rbbench.pipetask import run_section

        return run_section(args.smoke, workdir=args.out / "work")
    if number == 6:
        from rbbench.search import run_section

        return run_section(args.smoke, args.out / "search", args.search_doc_dir)
    from rbbench.training import run_section

    return run_section(args.smoke)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes: checks that everything runs.")
    parser.add_argument("--sections", type=_parse_sections, default=sorted(SECTIONS),
                        help="Comma-separated section numbers (default: all).")
    parser.add_argument("--out", type=Path, default=Path("bench_out"), help="Folder for results.json/.md.")
    parser.add_argument("--doc-table", type=Path,
                        help="Also write the results as the reStructuredText include of doc/performance.rst "
                        "(make bench: doc/_generated/bench_results.rst).")
    parser.add_argument("--search-doc-dir", type=Path,
                        help="Section 6: also write its table and plot into this folder (make bench: "
                        "doc/_generated).")
    parser.add_argument("--synthetic", action="store_true",
                        help="Sections 2-3: synthetic images instead of the simulator (faster to make).")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logging.")


def _run(args: argparse.Namespace) -> int:
    """Run the sections; print and write the results (exit status 0: every section ran)."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    if args.worker:  # a measurement that needs its own process (peak memory)
        from rbbench.detector import worker_main

        return worker_main(json.loads(args.spec))

    args.out.mkdir(parents=True, exist_ok=True)
    env = environment()
    print(f"rbnodia benchmarks{' (smoke sizes: numbers are meaningless)' if args.smoke else ''}: "
          f"{env['cpu']}, {env['cpus']} CPUs, load average {env['load_average_start'][0]:.2f}; "
          f"tensorflow {env['tensorflow']}, onnxruntime {env['onnxruntime']}", flush=True)
    figures: list[Figure] = []
    started = time.perf_counter()
    for number in args.sections:
        if number == 3 and 2 in args.sections:
            continue  # measured together with section 2 (same detectors, same worker processes)
        names = [n for n in (2, 3) if n in args.sections] if number == 2 else [number]
        for n in names:
            print(f"== section {n}: {SECTIONS[n]}", flush=True)
        t0 = time.perf_counter()
        new = _run_section(number, args)
        figures.extend(new)
        print(f"   {len(new)} figures in {time.perf_counter() - t0:.1f} s", flush=True)
        partial = json.dumps([f.__dict__ for f in figures], indent=2, default=str)
        (args.out / "partial.json").write_text(partial)
    env["load_average_end"] = load_average()
    env["seconds"] = round(time.perf_counter() - started, 1)
    env["smoke"] = args.smoke
    env["sections"] = args.sections
    header = (f"rbnodia benchmark results ({'smoke' if args.smoke else 'full'} sizes; load average "
              f"{env['load_average_start'][0]:.2f} at start, {env['load_average_end'][0]:.2f} at end; "
              f"{env['seconds']} s)")
    print()
    print(render_table(figures, header))
    (args.out / "results.json").write_text(json.dumps(
        {"environment": env, "figures": [f.__dict__ for f in figures]}, indent=2, default=str))
    (args.out / "results.md").write_text(render_markdown(figures, env))
    (args.out / "results.rst").write_text(render_rst(figures))
    (args.out / "partial.json").unlink(missing_ok=True)
    print(f"\nWrote {args.out / 'results.json'}, {args.out / 'results.md'} and {args.out / 'results.rst'}")
    if args.doc_table:
        command = " ".join(["make bench"] + ([f'BENCH_ARGS="{" ".join(_bench_args(args))}"']
                                             if _bench_args(args) else []))
        from rbnodia.commands.reports import write_text_atomically

        write_text_atomically(args.doc_table, render_doc_include(figures, env, command))
        print(f"Wrote {args.doc_table}")
    return 0


main = script_main(__doc__, _arguments, _run, epilog=True)

if __name__ == "__main__":
    sys.exit(main())

"""``rbnodia demo``: simulated data -> Butler repo -> ``pipetask run`` ->
real/bogus catalogs, with a short summary.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "run_demo", "score_against_truth", "summarize_outputs"]

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .arguments import Command

_LOG = logging.getLogger(__name__)


def score_against_truth(catalog, truth, injected=None) -> dict[str, Any]:
    """Purity and completeness of ``is_real`` against the simulation's truth.

    Parameters
    ----------
    catalog : `astropy.table.Table`
        Classified detections (``id``, ``is_real``).
    truth : `astropy.table.Table`
        ``id``, ``label`` (0 real, 1 bogus) and ``family`` per detection.
    injected : `astropy.table.Table`, optional
        Every injected transient (``detected``, ``detection_id``).

    Returns
    -------
    scores : `dict`
        ``n_truth``, ``n_true_real``, ``n_true_bogus``, ``n_called_real``,
        ``purity`` (real among called real), ``completeness`` (called real
        among real), ``accuracy``, ``tp_rate``, ``tn_rate``, ``families``
        (``{family: {"label", "n", "called_real"}}``) and, with
        ``injected``, ``n_injected``, ``n_injected_detected`` and
        ``injected_completeness`` (called real among all injections).
    """
    from astropy.table import join

    matched = join(catalog["id", "is_real"], truth["id", "label", "family"], keys="id")
    real = np.asarray(matched["label"]) == 0
    called = np.asarray(matched["is_real"], dtype=bool)
    family = np.asarray(matched["family"]).astype(str)

    def ratio(num, den):
        return float(num) / float(den) if den else float("nan")

    scores: dict[str, Any] = {
        "n_truth": len(matched),
        "n_true_real": int(real.sum()),
        "n_true_bogus": int((~real).sum()),
        "n_called_real": int(called.sum()),
        "purity": ratio((called & real).sum(), called.sum()),
        "completeness": ratio((called & real).sum(), real.sum()),
        "accuracy": ratio((called == real).sum(), len(real)),
        "tp_rate": ratio((called & real).sum(), real.sum()),
        "tn_rate": ratio((~called & ~real).sum(), (~real).sum()),
        "families": {
            f: {
                "label": int(np.asarray(matched["label"])[family == f][0]),
                "n": int((family == f).sum()),
                "called_real": int((called & (family == f)).sum()),
            }
            for f in sorted(set(family))
        },
    }
    if injected is not None and len(injected):
        called_ids = set(np.asarray(matched["id"])[called].tolist())
        hit = [int(d) in called_ids for d in np.asarray(injected["detection_id"])]
        scores.update(
            n_injected=len(injected),
            n_injected_detected=int(np.sum(injected["detected"])),
            injected_completeness=ratio(np.sum(hit), len(injected)),
        )
    return scores


def summarize_outputs(
    repo: str | Path, collection: str, truth_collection: str | None = None
) -> dict[str, Any]:
    """Count the classified detections in a collection and score them
    against the simulation's truth.

    Parameters
    ----------
    repo : `str` or `pathlib.Path`
        Butler repository.
    collection : `str`
        Output collection holding the ``rbnodia_reliability`` catalogues.
    truth_collection : `str`, optional
        Collection holding ``rbnodia_truth`` (and ``rbnodia_injected``) for
        the same data IDs; without it, or where it has none, nothing is
        scored.

    Returns
    -------
    summary : `dict`
        ``n_catalogs``, ``n_detections``, ``n_real``, ``n_bogus``,
        ``n_no_data``, ``threshold``, ``model``, and the
        `score_against_truth` entries when truth is available.

    Raises
    ------
    ValueError
        Raised if ``collection`` has no ``rbnodia_reliability`` dataset.
    """
    from astropy.table import vstack

    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(repo))
    refs = sorted(butler.query_datasets("rbnodia_reliability", collections=collection, find_first=True),
                  key=lambda ref: tuple(ref.dataId.required.values()))
    catalogs, truths, injected = [], [], []
    for ref in refs:
        # Keep the table metadata (model, threshold), which ArrowAstropy strips by default.
        catalogs.append(butler.get(ref, parameters={"strip_astropy_meta_yaml": False}))
        if truth_collection:
            for name, into in (("rbnodia_truth", truths), ("rbnodia_injected", injected)):
                if not butler.registry.queryDatasetTypes(name):
                    continue
                found = butler.query_datasets(name, collections=truth_collection, data_id=ref.dataId,
                                              explain=False)
                if found:
                    into.append(butler.get(found[0]))
    if not catalogs:
        raise ValueError(f"No rbnodia_reliability datasets in collection {collection!r}.")
    allrows = vstack(catalogs, metadata_conflicts="silent")
    no_data = np.asarray(allrows["flag_no_data"])
    summary = {
        "n_catalogs": len(catalogs),
        "n_detections": len(allrows),
        "n_real": int(np.sum(allrows["is_real"])),
        "n_bogus": int(np.sum(~np.asarray(allrows["is_real"]) & ~no_data)),
        "n_no_data": int(no_data.sum()),
        "threshold": catalogs[0].meta.get("rbnodia_threshold"),
        "model": catalogs[0].meta.get("rbnodia_model"),
    }
    if truths:
        summary.update(score_against_truth(
            allrows, vstack(truths, metadata_conflicts="silent"),
            vstack(injected, metadata_conflicts="silent") if injected else None,
        ))
    return summary


def _print_truth_scores(summary: dict[str, Any]) -> None:
    """Purity, completeness and the per-family table of `score_against_truth`."""
    bogus_fraction = summary["n_true_bogus"] / max(summary["n_truth"], 1)
    print(f"  vs simulation truth   : {summary['n_true_real']} real, {summary['n_true_bogus']} bogus "
          f"detections (bogus fraction {bogus_fraction:.2f})")
    print(f"    purity              : {summary['purity']:.3f} "
          f"(real among the {summary['n_called_real']} called real)")
    print(f"    completeness        : {summary['completeness']:.3f} (called real among real detections)")
    if "n_injected" in summary:
        print(f"    injected transients : {summary['n_injected']}, {summary['n_injected_detected']} "
              f"detected, {summary['injected_completeness']:.3f} called real")
    print(f"    accuracy            : {summary['accuracy']:.3f} (TP rate {summary['tp_rate']:.3f}, "
          f"TN rate {summary['tn_rate']:.3f})")
    print("    per family          :  label      n  called real")
    rows = sorted(summary["families"].items(), key=lambda item: (item[1]["label"], -item[1]["n"]))
    for family, row in rows:
        kind = "real " if row["label"] == 0 else "bogus"
        share = row["called_real"] / row["n"]
        print(f"      {family:<20s} {kind} {row['n']:6d}  {row['called_real']:5d} ({share:.2f})")


def _retrieve_plots(repo: Path, collection: str, destination: Path) -> list[str]:
    """Copy the PNG datasets of ``collection`` to ``destination`` (the
    ``butler retrieve-artifacts`` way); returns their paths.
    """
    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(repo))
    refs = [
        ref
        for dataset_type in butler.registry.queryDatasetTypes("rbnodia_*")
        if dataset_type.storageClass_name == "Plot"
        for ref in butler.query_datasets(dataset_type, collections=collection, find_first=True, explain=False)
    ]
    if not refs:
        return []
    destination.mkdir(parents=True, exist_ok=True)
    paths = butler.retrieveArtifacts(refs, destination=f"{destination.resolve()}/", preserve_path=False,
                                     overwrite=True)
    return sorted(str(p.ospath) for p in paths)


def run_demo(args) -> int:
    """Run the demo: simulate a repository, run ``pipetask`` on it, read the
    outputs back and print a summary.

    Parameters
    ----------
    args : `argparse.Namespace`
        The parsed ``rbnodia demo`` arguments (see `register`).

    Returns
    -------
    status : `int`
        0 (failures raise).
    """
    from ..butler.execution import pipeline_path, run_pipetask
    from ..sim import write_simulated_repo

    timings = {}
    start = time.monotonic()
    repo = Path(args.repo)
    print(f"[1/3] Simulating {args.visits} visit(s) x {args.detectors} detector(s) ({args.preset}) "
          f"into {repo} ...")
    sim = write_simulated_repo(
        repo, preset=args.preset, n_visits=args.visits, n_detectors=args.detectors, seed=args.seed,
        image_size=tuple(args.size) if args.size else None, clobber=args.clobber, progress=True,
    )
    timings["simulate"] = time.monotonic() - start
    pipeline = pipeline_path(args.pipeline)
    output = args.output
    print(f"[2/3] pipetask run -p {pipeline.name} -i {sim['collection']} -o {output} (-j {args.jobs}) ...")
    t0 = time.monotonic()
    run_pipetask(repo, pipeline, [sim["collection"]], output, jobs=args.jobs, stream=not args.quiet)
    timings["pipetask"] = time.monotonic() - t0
    print("[3/3] Reading the outputs back from the Butler ...")
    summary = summarize_outputs(repo, output, truth_collection=sim["collection"])
    plots = _retrieve_plots(repo, output, Path(args.plots))
    timings["total"] = time.monotonic() - start

    print()
    print("rbnodia demo: summary")
    print(f"  detections classified : {summary['n_detections']} in {summary['n_catalogs']} "
          "detector catalogs")
    print(f"  model                 : {summary['model']} "
          f"(threshold {summary['threshold']:.3f} on score = P(real))")
    print(f"  real  (score >= thr.) : {summary['n_real']}")
    print(f"  bogus                 : {summary['n_bogus']}")
    print(f"  not scorable          : {summary['n_no_data']} (flag_no_data)")
    if "purity" in summary:
        _print_truth_scores(summary)
    print(f"  output collection     : {output}")
    if plots:
        print(f"  pictures (PNG)        : {len(plots)} files in {args.plots}/, e.g.")
        for path in plots[:4]:
            print(f"                          {path}")
    print(f"  time                  : simulate {timings['simulate']:.0f} s, "
          f"pipetask {timings['pipetask']:.0f} s, total {timings['total']:.0f} s")
    print("  see the outputs with  : (source .venv/bin/activate first if you used make demo)")
    print(f"    butler query-datasets {repo} rbnodia_reliability --collections {output}")
    print(f"    python -c \"from lsst.daf.butler import Butler; b = Butler('{repo}'); "
          f"print(b.get('rbnodia_reliability', {sim['data_ids'][0]!r}, collections='{output}'))\"")
    return 0


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default="demo_repo",
                        help="Repository folder to create (default: demo_repo).")
    parser.add_argument("--clobber", action="store_true", help="Replace an existing repository folder.")
    parser.add_argument("--preset", default="lsst", choices=["lsst", "des"], help="Camera preset.")
    parser.add_argument("--visits", type=int, default=2, help="Number of visits.")
    parser.add_argument("--detectors", type=int, default=2, help="Detectors per visit.")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(2048, 2048),
                        help="Detector size in pixels (default 2048 2048; the full LSST size is 4096 4096).")
    parser.add_argument("--seed", type=int, default=2026, help="Simulation seed.")
    parser.add_argument("--pipeline", default="SaliencyDiagnostics",
                        help="Packaged pipeline: SaliencyDiagnostics (default: noDIA classification with "
                        "saliency, then the paper's saliency figures), RealBogusNoDia or RealBogusDia.")
    parser.add_argument("--plots", default="demo_plots",
                        help="Folder for the PNG outputs (default demo_plots).")
    parser.add_argument("--output", default="demo/realbogus", help="Output collection.")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="pipetask processes (default 2).")
    parser.add_argument("-q", "--quiet", action="store_true", help="Do not echo pipetask's log.")


COMMANDS = (
    Command(
        "demo",
        help="Simulate a small survey into a new Butler repo and run the real/bogus pipeline on it.",
        run=run_demo,
        arguments=_demo_arguments,
    ),
)

"""``rbnodia demo``: simulated data -> Butler repo -> ``pipetask run`` ->
real/bogus catalogs, with a short summary."""

from __future__ import annotations

__all__ = ["register", "run_demo", "summarize_outputs"]

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

_LOG = logging.getLogger(__name__)


def summarize_outputs(repo: str | Path, collection: str, truth_collection: str | None = None) -> dict[str, Any]:
    """Count the classified detections in ``collection`` (and score them
    against the simulation's truth when ``truth_collection`` has it).

    Returns
    -------
    summary : `dict`
        n_catalogs, n_detections, n_real, n_bogus, n_no_data, threshold,
        model, and accuracy/tp_rate/tn_rate when truth is available.
    """
    from astropy.table import join, vstack
    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(repo))
    refs = sorted(butler.query_datasets("rbnodia_reliability", collections=collection, find_first=True),
                  key=lambda ref: tuple(ref.dataId.required.values()))
    catalogs, truths = [], []
    for ref in refs:
        # Keep the table metadata (model, threshold), which ArrowAstropy strips by default.
        catalogs.append(butler.get(ref, parameters={"strip_astropy_meta_yaml": False}))
        if truth_collection:
            truth_refs = butler.query_datasets("rbnodia_truth", collections=truth_collection,
                                               data_id=ref.dataId, explain=False)
            if truth_refs:
                truths.append(butler.get(truth_refs[0]))
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
        matched = join(allrows, vstack(truths)["id", "label"], keys="id")
        real = np.asarray(matched["label"]) == 0
        predicted = np.asarray(matched["is_real"])
        summary.update(
            n_truth=len(matched),
            n_true_real=int(real.sum()),
            accuracy=float(np.mean(predicted == real)),
            tp_rate=float(np.mean(predicted[real])) if real.any() else float("nan"),
            tn_rate=float(np.mean(~predicted[~real])) if (~real).any() else float("nan"),
        )
    return summary


def _retrieve_plots(repo: Path, collection: str, destination: Path) -> list[str]:
    """Copy the PNG datasets of ``collection`` to ``destination`` (the
    ``butler retrieve-artifacts`` way); returns their paths."""
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
    from ..butler.execution import pipeline_path, run_pipetask
    from ..sim import write_simulated_repo

    timings = {}
    start = time.monotonic()
    repo = Path(args.repo)
    print(f"[1/3] Simulating {args.visits} visit(s) x {args.detectors} detector(s) ({args.preset}) into {repo} ...")
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
    print(f"  detections classified : {summary['n_detections']} in {summary['n_catalogs']} detector catalogs")
    print(f"  model                 : {summary['model']} (threshold {summary['threshold']:.3f} on score = P(real))")
    print(f"  real  (score >= thr.) : {summary['n_real']}")
    print(f"  bogus                 : {summary['n_bogus']}")
    print(f"  not scorable          : {summary['n_no_data']} (flag_no_data)")
    if "accuracy" in summary:
        print(f"  vs simulation truth   : accuracy {summary['accuracy']:.3f}, TP rate {summary['tp_rate']:.3f}, "
              f"TN rate {summary['tn_rate']:.3f} ({summary['n_true_real']} injected transients detected)")
    print(f"  output collection     : {output}")
    if plots:
        print(f"  pictures (PNG)        : {len(plots)} files in {args.plots}/, e.g.")
        for path in plots[:4]:
            print(f"                          {path}")
    print(f"  time                  : simulate {timings['simulate']:.0f} s, pipetask {timings['pipetask']:.0f} s, "
          f"total {timings['total']:.0f} s")
    print("  see the outputs with  : (source .venv/bin/activate first if you used make demo)")
    print(f"    butler query-datasets {repo} rbnodia_reliability --collections {output}")
    print(f"    python -c \"from lsst.daf.butler import Butler; b = Butler('{repo}'); "
          f"print(b.get('rbnodia_reliability', {sim['data_ids'][0]!r}, collections='{output}'))\"")
    return 0


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo", help="Simulate a small survey into a new Butler repo and run the real/bogus pipeline on it."
    )
    parser.add_argument("--repo", default="demo_repo", help="Repository folder to create (default: demo_repo).")
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
    parser.add_argument("--plots", default="demo_plots", help="Folder for the PNG outputs (default demo_plots).")
    parser.add_argument("--output", default="demo/realbogus", help="Output collection.")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="pipetask processes (default 2).")
    parser.add_argument("-q", "--quiet", action="store_true", help="Do not echo pipetask's log.")
    parser.set_defaults(func=run_demo)

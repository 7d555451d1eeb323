"""``rbnodia simulate``, ``make-training-set``, ``make-training-splits``,
``ingest-autoscan`` and ``plot-examples``: simulated survey data and the
DES autoscan stamps.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]




import argparse
import json
import logging
from pathlib import Path

from .arguments import Command, non_negative_int, positive_int

_log = logging.getLogger(__name__)


def _print(summary: dict) -> None:
    print(json.dumps(summary, indent=2, default=str))


def _simulate(args: argparse.Namespace) -> int:
    from ..sim import write_simulated_repo

    summary = write_simulated_repo(
        args.repo,
        preset=args.preset,
        n_visits=args.visits,
        n_detectors=args.detectors,
        seed=args.seed,
        image_size=tuple(args.size) if args.size else None,
        clobber=args.clobber,
        progress=not args.no_progress,
    )
    summary.pop("data_ids", None)
    _print(summary)
    return 0


def _set_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of `~rbnodia.sim.make_training_set` shared by both commands."""
    return dict(
        real_fraction=args.real_fraction,
        stamp_size=args.stamp_size,
        workers=args.workers,
        progress=not args.no_progress,
        patch_size=args.patch_size,
        shard_size=args.shard_size,
        domain_randomization=args.domain_randomization,
        composition=None if args.composition == "natural" else "default",
        overwrite=args.overwrite,
        # Only a search set records its candidates, so DIA sets keep their settings (and resume).
        **({"candidates": "search"} if args.candidates == "search" else {}),
    )


def _make_training_set(args: argparse.Namespace) -> int:
    from ..sim import make_training_set

    summary = make_training_set(args.n, args.out, preset=args.preset, seed=args.seed, **_set_options(args))
    if args.plot:
        from ..core.stampset import LabelledStamps
        from ..sim.plots import plot_examples

        first = LabelledStamps.load(summary["shards"][0])
        summary["plot"] = str(plot_examples(first, args.plot))
    summary["shards"] = len(summary["shards"])
    for key in ("domain_randomization", "boost"):  # in summary.json
        summary.pop(key, None)
    _print(summary)
    return 0


def _make_training_splits(args: argparse.Namespace) -> int:
    from ..sim import make_training_splits

    summary = make_training_splits(
        args.out,
        n_train=args.n_train,
        n_validation=args.n_validation,
        n_test=args.n_test,
        presets=tuple(args.presets),
        seed=args.seed,
        **_set_options(args),
    )
    keys = ("n", "n_real", "n_bogus", "shards", "seconds")
    _print({split: {p: {k: v[k] for k in keys} for p, v in sets.items()} for split, sets in summary.items()})
    return 0


def _add_set_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by make-training-set and make-training-splits."""
    p.add_argument("--real-fraction", type=float, default=0.5)
    p.add_argument("--stamp-size", type=positive_int, default=51)
    p.add_argument("--workers", type=positive_int, default=2)
    p.add_argument("--patch-size", type=positive_int, default=320)
    p.add_argument("--shard-size", type=positive_int, default=10_000)
    p.add_argument(
        "--no-domain-randomization",
        dest="domain_randomization",
        action="store_false",
        help="Nominal preset nuisance parameters instead of the wide ranges of rbnodia.sim.randomize.",
    )
    p.add_argument(
        "--composition",
        choices=("default", "natural"),
        default="default",
        help="Bogus family-group shares: 'default' (rbnodia.sim.BOGUS_COMPOSITION) or 'natural' (as the "
        "patches produce them).",
    )
    p.add_argument(
        "--candidates",
        choices=("dia", "search"),
        default="dia",
        help="Cut stamps at the difference-image detections ('dia') or at the candidates of the search with "
        "no difference image ('search', rbnodia.sim.search_stamps; use with --composition natural).",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Delete existing shards (default: keep them and resume)."
    )
    p.add_argument("--no-progress", action="store_true")


def _ingest_autoscan(args: argparse.Namespace) -> int:
    from ..sim.autoscan import ingest_autoscan_to_butler, read_autoscan

    if not args.repo and not args.out:
        raise ValueError("Give --repo and/or --out.")
    summary: dict = {}
    if args.repo:
        summary = ingest_autoscan_to_butler(args.path, args.repo, labels=args.labels, run=args.run)
        summary.pop("data_ids", None)
    if args.out:
        stamps = read_autoscan(args.path, labels=args.labels, progress=not args.no_progress)
        summary["out"] = str(stamps.save(args.out))
        summary.setdefault("n", len(stamps))
        summary.setdefault("skipped", stamps.meta["skipped"])
    _print(summary)
    return 0


def _plot_examples(args: argparse.Namespace) -> int:
    from ..core.stampset import LabelledStamps
    from ..sim.plots import plot_examples

    stamps = LabelledStamps.load(args.stamps)
    path = plot_examples(stamps, args.out, per_family=args.per_family, seed=args.seed)
    _print({"out": str(path), **stamps.summary()})
    return 0


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sim.repo import DEFAULT_SEED

    parser.add_argument("--repo", required=True, type=Path, help="Repository folder to create.")
    parser.add_argument("--preset", choices=("des", "lsst"), default="lsst")
    parser.add_argument("--visits", type=positive_int, default=2)
    parser.add_argument("--detectors", type=positive_int, default=2)
    parser.add_argument(
        "--size", type=positive_int, nargs=2, metavar=("H", "W"),
        help="Detector size (default: full preset size)."
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--clobber", action="store_true", help="Replace an existing repository.")
    parser.add_argument("--no-progress", action="store_true")


def _make_training_set_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sim.repo import DEFAULT_SEED

    parser.add_argument("--n", type=positive_int, default=100_000, help="Number of stamps.")
    parser.add_argument("--out", required=True, type=Path, help="Output folder.")
    parser.add_argument("--preset", choices=("des", "lsst"), default="des")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    _add_set_arguments(parser)
    parser.add_argument("--plot", type=Path, help="Also write a PNG of examples per family.")


def _make_training_splits_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sim.repo import DEFAULT_SEED

    parser.add_argument("--out", required=True, type=Path, help="Output folder.")
    parser.add_argument("--n-train", type=positive_int, default=100_000, help="Training stamps per preset.")
    parser.add_argument("--n-validation", type=non_negative_int, default=20_000,
                        help="Validation stamps per preset.")
    parser.add_argument("--n-test", type=non_negative_int, default=20_000, help="Test stamps per preset.")
    parser.add_argument("--presets", nargs="+", choices=("des", "lsst"), default=["des", "lsst"])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    _add_set_arguments(parser)


def _ingest_autoscan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="Autoscan folder.")
    parser.add_argument("--repo", type=Path, help="Butler repository (created if missing).")
    parser.add_argument("--out", type=Path, help="Write one LabelledStamps .npz file.")
    parser.add_argument("--labels", type=Path, help="Label CSV if not found under PATH.")
    parser.add_argument("--run", default="DECam/autoscan", help="RUN collection.")
    parser.add_argument("--no-progress", action="store_true")


def _plot_examples_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stamps", required=True, type=Path,
                        help="LabelledStamps .npz file or folder of shards.")
    parser.add_argument("--out", required=True, type=Path, help="PNG path.")
    parser.add_argument("--per-family", type=positive_int, default=4)
    parser.add_argument("--seed", type=int, default=0)


COMMANDS = (
    Command(
        "simulate",
        help="Write a Butler repository of simulated pipeline inputs.",
        description="Simulate science, warped template and difference images with detections and truth "
        "for N visits x M detectors, and write them to a new Butler repository.",
        run=_simulate,
        arguments=_simulate_arguments,
    ),
    Command(
        "make-training-set",
        help="Write labelled (diff, srch, tmpl) stamps for training.",
        description="Fast mode: simulate many small patches in parallel and write class-balanced shards of "
        "labelled raw stamps (rbnodia LabelledStamps .npz).  Resumable: shards already written with the "
        "same settings are kept.",
        run=_make_training_set,
        arguments=_make_training_set_arguments,
    ),
    Command(
        "make-training-splits",
        help="Write training, validation and test stamp sets for several presets.",
        description="make-training-set for each split and preset into OUT/<split>/<preset>/, with distinct "
        "seeds (seed + 10 split + preset index).  Resumable.",
        run=_make_training_splits,
        arguments=_make_training_splits_arguments,
    ),
    Command(
        "ingest-autoscan",
        help="Read the DES autoscan stamps into a repository and/or an .npz file.",
        description="Read diff/srch/temp<ID>.fits stamps and autoscan_features.3.csv labels.",
        run=_ingest_autoscan,
        arguments=_ingest_autoscan_arguments,
    ),
    Command(
        "plot-examples",
        help="PNG grid of example stamps per family (diff | srch | tmpl).",
        run=_plot_examples,
        arguments=_plot_examples_arguments,
    ),
)

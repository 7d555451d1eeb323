"""``rbnodia info`` and ``rbnodia env``: what is installed, and the
environment a pip install needs for the Butler and pipelines.
"""

from __future__ import annotations

__all__ = ["environment", "package_dir", "register"]

import json

from ..butler.environment import environment, package_dir


def _info(args) -> int:
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
            print(f"  {name:16s} {model.version}  layout={meta.layout} threshold={meta.threshold:.3f} "
                  f"({meta.threshold_method})")
            print("    metrics:", json.dumps(meta.metrics.get("test", meta.metrics), default=str)[:300])
        else:
            print(f"  {name}")
    return 0


def _env(args) -> int:
    for key, value in environment().items():
        print(f'export {key}="{value}"')
    return 0


def register(subparsers) -> None:
    """Add the ``info`` and ``env`` subcommands."""
    info = subparsers.add_parser("info", help="Show pipelines, architectures and packaged models.")
    info.add_argument("--models", action="store_true", help="Load each packaged model and show its metadata.")
    info.set_defaults(func=_info)
    env = subparsers.add_parser(
        "env",
        help="Print shell exports for RBNODIA_DIR and DAF_BUTLER_CONFIG_PATH (eval \"$(rbnodia env)\").",
    )
    env.set_defaults(func=_env)

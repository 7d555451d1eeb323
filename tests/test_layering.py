"""The package's layers import only downwards.

From the top: ``commands``; then ``tasks``, ``butler``, ``sim`` and
``stresstest``; then ``training``; then ``nn``, ``adapters`` and ``plots``;
then ``core``.  A module may import its own layer and the layers below,
never one above.  Checked on the source (every ``import`` and ``from ...
import`` statement, lazy ones inside functions included), so that a lower
layer stays usable without the heavier ones above it.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "rbnodia"
LAYERS = [
    {"commands", "cli"},
    {"tasks", "butler", "sim", "stresstest"},
    {"training"},
    {"nn", "adapters", "plots"},
    {"core", "version", "data", "__init__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _top_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "rbnodia" and len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute rbnodia module) of every import in a source file."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(relative.parts[:-1]) if relative.name != "__init__" else list(relative.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            found += [(node.lineno, name) for name in names]
    return found


def _sources():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_upward_import(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if own not in RANK:
        pytest.fail(f"{own} is in no layer: add it to LAYERS in {__file__}")
    upward = [(line, module) for line, module in _imports(path)
              if (top := _top_package(module)) is not None and RANK.get(top, len(LAYERS)) < RANK[own]]
    assert not upward, f"{path.relative_to(PACKAGE)} imports a higher layer: {upward}"

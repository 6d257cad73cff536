"""Imports point downward: each streamasr module imports only modules of a lower layer
(or of its own package), never the layers above it, so that the packages can grow
(backends, exporters, the server) without import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.common import REPO

# Bottom first. A module may import its own package and anything in a lower layer.
LAYERS = [
    {"errors"},
    {"units", "keys", "cpu", "files", "dct", "version", "modes", "pools"},
    {"checkpoints", "tokenizer", "data", "losses", "frontend"},
    {"parts"},
    {"decoding"},
    {"model"},
    {"streaming"},
    {"export"},
    {"engine"},
    {"training", "evaluate", "live"},
    {"serve"},
    {"cli", "brain"},  # brain: the alias module kept for run folders saved before the packages
]
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def streamasr_imports(path: Path) -> set[str]:
    """First components after ``streamasr.`` of every import in a module, wherever the
    import statement stands (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            if node.module == "streamasr":
                names = [f"streamasr.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "streamasr" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_top_level_module_and_package_has_a_layer():
    package = REPO / "streamasr"
    tops = {p.stem for p in package.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert tops == set(LAYER_OF), tops ^ set(LAYER_OF)


def test_imports_only_point_downward():
    wrong = []
    for path in sorted((REPO / "streamasr").rglob("*.py")):
        relative = path.relative_to(REPO / "streamasr").with_suffix("")
        top = relative.parts[0]
        if top == "__init__":
            continue
        for target in streamasr_imports(path) - {top}:
            if LAYER_OF[target] >= LAYER_OF[top]:
                wrong.append(f"{relative} (layer {LAYER_OF[top]}) imports streamasr.{target} (layer {LAYER_OF[target]})")
    assert not wrong, "\n".join(wrong)

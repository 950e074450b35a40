"""The package's layering: lower layers never import upper ones (docs/architecture.md, module map).

``taae.nn`` and ``taae.quantizers`` are the building blocks; the models, training, inference and evaluation are
built on them. A block that imports a model (``TokenSpec`` once lived in ``taae.models.base`` and was imported
upward by the quantizers and the token file) makes the layers circular.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "taae"
LOWER = {
    "taae/nn": ("taae.models", "taae.quantizers", "taae.training", "taae.codec", "taae.eval"),
    "taae/quantizers": ("taae.models", "taae.training", "taae.codec", "taae.eval"),
    "taae/tokens.py": ("taae.models", "taae.training", "taae.codec", "taae.eval"),
    "taae/audio.py": ("taae.models", "taae.quantizers", "taae.nn", "taae.training", "taae.codec", "taae.eval"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from … import`` statement names, at any depth (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(LOWER))
def test_lower_layers_do_not_import_upper_ones(layer):
    root = PACKAGE.parent / layer
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    assert files
    upward = {f"{f.relative_to(PACKAGE.parent)}: {name}" for f in files for name in imported_modules(f)
              if name.startswith(LOWER[layer])}
    assert not upward, sorted(upward)

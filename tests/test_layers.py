"""The package's layering, computed from the AST of every module in ``taae/`` (docs/architecture.md, section 2).

Layers, lowest first; a module may import its own layer (without a cycle) and any layer below, never one above.
Lazy imports inside functions count like any other: a cycle that only runs late is still a cycle a reader has to
untangle. The one exception is ``taae/__init__``'s lazy ``Codec`` (``from taae import Codec`` without loading the
models on ``import taae``): the root sits at the bottom so that any module may read ``taae.__version__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "taae"
LAYERS: list[tuple[str, ...]] = [
    ("taae",),
    ("taae.errors",),
    ("taae.nn",),
    ("taae.quantizers",),
    ("taae.io",),
    ("taae.models",),
    ("taae.losses", "taae.interop", "taae.data"),
    ("taae.codec",),
    ("taae.eval",),
    ("taae.training", "taae.jobs"),
    ("taae.scaling",),
    ("taae.import_official", "taae.__main__"),
]
ALLOWED_UPWARD = {("taae", "taae.codec")}
"""The lazy ``Codec`` of ``taae/__init__.py``."""
MAX_LOOSE = 6
"""Modules at the top of ``taae/`` besides ``__init__`` and ``__main__``."""
MAX_LINES = 350


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_sources(root: Path = PACKAGE) -> dict[str, str]:
    return {module_name(p, root): p.read_text() for p in sorted(root.rglob("*.py"))}


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module → the taae modules it imports (at any depth, relative imports resolved; ``from pkg import sub`` is an
    import of ``pkg.sub``, ``from pkg import name`` one of ``pkg``)."""

    def resolve(name: str) -> str | None:
        while name and name not in sources:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, text in sources.items():
        is_package = f"{module}.__init__" not in sources and any(k.startswith(module + ".") for k in sources)
        package = module if is_package else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                targets.update(resolve(a.name) for a in node.names if a.name.split(".")[0] == "taae")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    full = ".".join(base + ([node.module] if node.module else []))
                else:
                    full = node.module or ""
                if full.split(".")[0] != "taae":
                    continue
                targets.update(resolve(f"{full}.{a.name}") for a in node.names)
        graph[module] = {t for t in targets if t and t != module}
    return graph


def layer_of(module: str) -> int:
    best, index = -1, None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    if index is None:
        raise AssertionError(f"{module} belongs to no layer of tests/test_layers.py: add it to LAYERS")
    return index


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts
                  if layer_of(t) > layer_of(m) and (m, t) not in ALLOWED_UPWARD)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), lazy Codec edge excluded."""
    graph = {m: {t for t in ts if (m, t) not in ALLOWED_UPWARD} for m, ts in graph.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph(package_sources())


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_no_import_cycle_anywhere(graph):
    assert cycles(graph) == []


def test_no_upward_import_but_the_lazy_codec(graph):
    assert upward_imports(graph) == []
    assert "taae.codec" in graph["taae"]  # the exception is real, not a stale entry


def test_the_checks_fail_on_a_planted_upward_import_and_cycle(graph):
    """Planted bugs: ``taae/nn/conv.py`` importing ``taae.models.taae`` (the kind of upward link that once put
    ``TokenSpec`` in ``taae.models.base``), and ``taae/io/export.py`` importing ``taae.codec`` as ``interop`` once
    did while ``codec`` imported ``interop``."""
    sources = package_sources()
    planted = dict(sources)
    planted["taae.nn.conv"] += "\n\ndef _planted():\n    from taae.models.taae import TAAE  # noqa: F401\n"
    bad = import_graph(planted)
    assert upward_imports(bad) == ["taae.nn.conv -> taae.models.taae"]
    assert any("taae.nn.conv" in c and "taae.models.taae" in c for c in cycles(bad))
    planted = dict(sources)
    planted["taae.io.export"] += "\n\ndef _planted():\n    from taae.codec import Codec  # noqa: F401\n"
    bad = import_graph(planted)
    assert "taae.io.export -> taae.codec" in upward_imports(bad)
    assert any("taae.io.export" in c and "taae.codec.codec" in c for c in cycles(bad))


def test_relative_and_submodule_imports_are_resolved():
    sources = {"taae": "", "taae.a": "from . import b\n", "taae.a.b": "from .. import c\n", "taae.c": "",
               "taae.a.__init__": ""}
    sources = {k: v for k, v in sources.items() if k != "taae.a.__init__"}
    graph = import_graph(sources)
    assert graph["taae.a"] == {"taae.a.b"} and graph["taae.a.b"] == {"taae.c"}


def test_at_most_six_loose_modules_at_the_top():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(loose) <= MAX_LOOSE, loose


def test_modules_over_the_line_guideline_are_named_in_the_architecture_page():
    """Every module over 350 lines is named, with its reason, on one line of docs/architecture.md that mentions
    the guideline."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text().splitlines()
    named = [line for line in page if "350" in line]
    long = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    long = {path: n for path, n in long.items() if n > MAX_LINES}
    missing = [f"{path} ({n} lines)" for path, n in sorted(long.items())
               if not any(f"`{path}`" in line for line in named)]
    assert not missing, f"modules over {MAX_LINES} lines not explained in docs/architecture.md: {missing}"

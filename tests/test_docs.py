"""The project's own docs name only modules, files and objects that exist (a renamed module breaks this test).

Every backticked repository path (``taae/…``, ``tests/…``, ``configs/…``, ``benchmarks/…``, ``scripts/…``,
``docs/…``) must exist, and every backticked dotted name ``taae.a.b[.Attr]`` must import as a module or resolve
to an attribute of one.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PATH = re.compile(r"^(?:taae|tests|configs|benchmarks|scripts|docs)/[\w./-]*$")
DOTTED = re.compile(r"^taae(?:\.\w+)+$")


def backticked(text: str) -> list[str]:
    """Every `inline code` span of a Markdown text, code blocks left out."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.findall(r"`([^`\n]+)`", text)


def resolves(dotted: str) -> bool:
    """True if ``dotted`` is a module, or an attribute chain below the longest importable prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def test_docs_exist():
    assert (ROOT / "docs" / "architecture.md").is_file()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_module_exists(doc):
    names = backticked(doc.read_text())
    paths = [n for n in names if PATH.match(n)]
    dotted = [n for n in names if DOTTED.match(n)]
    assert paths or dotted, f"{doc.name} names no module at all: is the pattern still right?"
    missing = [p for p in paths if not (ROOT / p).exists()]
    unresolved = [d for d in dotted if not resolves(d)]
    assert not missing and not unresolved, f"{doc.name}: missing paths {missing}, unresolved names {unresolved}"


def test_the_checker_catches_a_missing_module():
    assert not resolves("taae.models.no_such_module") and not resolves("taae.codec.NoSuchClass")
    assert resolves("taae.codec.Codec") and resolves("taae.quantizers.fsq")
    assert backticked("a `taae/x.py` b\n```\n`taae/y.py`\n```") == ["taae/x.py"]


def layout_names(text: str, heading: str) -> set[str]:
    """``taae/…`` names in the code block(s) of the section under ``heading`` (a README or docs page)."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(.*?)```", section, flags=re.DOTALL)
    names = set()
    for block in blocks:
        for match in re.finditer(r"taae/(?:[\w.]+/?)*|(?<=\s)(?:[a-z_]+/)+(?=\s)|(?<=\s)[a-z_]+\.py\b", block):
            names.add(match.group(0))
    return names


@pytest.mark.parametrize(("doc", "heading"), [("README.md", "## Layout"), ("docs/architecture.md", "## 2. Module map")])
def test_layout_blocks_match_the_package_tree(doc, heading):
    """Both pictures of the tree name every folder and loose module of ``taae/``, and nothing that is not there."""
    names = layout_names((ROOT / doc).read_text(), heading)
    named_paths = {n for n in names if n.startswith("taae/")}
    missing = sorted(n for n in named_paths if not (ROOT / n).exists())
    assert not missing, f"{doc}: {missing} do not exist"
    folders = sorted(f"{p.name}/" for p in (ROOT / "taae").iterdir() if (p / "__init__.py").is_file())
    loose = sorted(p.name for p in (ROOT / "taae").glob("*.py") if p.name != "__init__.py")
    text = " ".join(names)
    unnamed = [f for f in folders + loose if f not in text]
    assert not unnamed, f"{doc}'s layout does not name {unnamed}"

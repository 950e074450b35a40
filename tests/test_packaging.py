"""pyproject.toml: a runtime dependency is one the package imports; test-only references sit in the dev extra."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_vector_quantize_pytorch_is_a_dev_dependency_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "vector-quantize-pytorch" not in _names(project["dependencies"])
    assert "vector-quantize-pytorch" in _names(project["optional-dependencies"]["dev"])
    importers = [p for p in (ROOT / "taae").rglob("*.py")
                 if re.search(r"^\s*(import|from)\s+vector_quantize_pytorch", p.read_text(), re.M)]
    assert importers == []  # the package never imports it: were it to, it must move back to dependencies


def test_license_is_an_spdx_expression_so_the_install_is_quiet():
    # A `license = {text = ...}` table makes setuptools >= 77 print a deprecation banner on every build.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(pyproject["project"]["license"], str)
    setuptools = next(r for r in pyproject["build-system"]["requires"] if _names([r]) == {"setuptools"})
    assert re.fullmatch(r"setuptools>=(\d+).*", setuptools) and int(setuptools.split(">=")[1].split(".")[0]) >= 77

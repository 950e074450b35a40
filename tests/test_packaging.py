"""pyproject.toml: a runtime dependency is one the package imports; test-only references sit in the dev extra."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
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


def test_editable_build_prints_no_setuptools_notice(tmp_path):
    # What `pip install -e .` runs (PEP 660's build_editable), in a clean process; any setuptools warning category
    # (the import-hook mode's "Editable installation" notice, a deprecation) is an error here.
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} < 77 (the build requirement)")
    code = ("import warnings; warnings.simplefilter('error');"
            "from setuptools import build_meta;"
            f"print(build_meta.build_editable({str(tmp_path)!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = tmp_path / result.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        pth = [n for n in archive.namelist() if n.endswith(".pth")]
        # the static-path mode: one .pth naming the repository root, no generated import-hook module
        assert len(pth) == 1 and Path(archive.read(pth[0]).decode().strip()) == ROOT
        assert not [n for n in archive.namelist() if n.endswith("finder.py")]

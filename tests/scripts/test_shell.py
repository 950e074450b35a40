"""Every shell script the project ships parses, and CI ends in the README's test command.

A stray line pasted into `.ci/run` once made CI fail before running a single test; `bash -n` catches that class
of break (unbalanced quotes, a dangling `if`) without running anything.
"""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted({*ROOT.glob("scripts/*.sh"), *ROOT.glob("benchmarks/*.sh"), ROOT / ".ci" / "run"})


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_script_parses(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, f"{script.relative_to(ROOT)}: {result.stderr.strip()}"


def test_ci_runs_the_readme_test_command():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [ln for ln in lines if ln and not ln.startswith("#")]
    assert commands[-1] == "make test", commands[-1]
    assert "make test" in (ROOT / "README.md").read_text()
    assert sum("make test" in c for c in commands) == 1, "CI must run the suite exactly once"

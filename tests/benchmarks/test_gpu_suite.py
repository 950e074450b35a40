"""benchmarks/gpu_suite.py: its plan fits its budget, its dry run runs every step, and what it imports is carried.

The dry run (``gpu_suite.sh --device cpu --quick``) runs each step of the real suite through the same scripts at
tiny sizes, so the one prepared GPU call cannot rot between lendings.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.benchmarks.test_gpu_wheels import carried, image_packages

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_suite  # noqa: E402

NOT_ON_THE_PATH = {"transformers": "taae.losses.perceptual imports it to build WavLM for the stage-2 loss, which "
                                   "train_step.py drops; the dry run's log shows it only because Lightning probes it"}
"""Imports inside functions the suite never calls, whose module the dry run still loaded through another package."""
SLOT = 7 * 60
"""Seconds of one suite call: 15-minute slots, 1–2 minutes of machine start, and a second call must fit."""
STARTUP = 20
"""Seconds before the first step: installing the carried wheels and starting the interpreter."""


def test_plan_caps_add_up_to_at_most_the_budget():
    caps = [step.cap for step in gpu_suite.PLAN]
    assert sum(caps) <= gpu_suite.BUDGET, f"gpu_suite.PLAN caps add up to {sum(caps)} s > BUDGET {gpu_suite.BUDGET}"
    assert gpu_suite.BUDGET + STARTUP <= SLOT, f"BUDGET {gpu_suite.BUDGET} s + {STARTUP} s start > {SLOT} s"
    assert all(cap > 0 for cap in caps)


def test_plan_order_is_most_valuable_first():
    names = [step.name for step in gpu_suite.PLAN]
    first = lambda word: next(i for i, n in enumerate(names) if word in n)  # noqa: E731
    assert first("tokens") < first("attention backends") < first("FlexAttention") < first("encode+decode")
    assert first("encode+decode") < first("train 25m") < first("train 240m") < first("950m") < first("compiled")
    assert names[-1] == "train 25m compiled" and [s.name for s in gpu_suite.PLAN if s.extend] == [names[-1]]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run of the whole suite through gpu_suite.sh; every interpreter logs its imports (-X importtime)."""
    out = tmp_path_factory.mktemp("suite")
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_suite.sh"), "--device", "cpu", "--quick", "--out",
                           str(out), "--cap-scale", "4"], capture_output=True, text=True, env=env)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return proc, out, rows


@pytest.mark.slow
def test_dry_run_runs_every_step(dry_run):
    proc, out, rows = dry_run
    steps = {row["step"]: row for row in rows if "status" in row}
    assert [s.name for s in gpu_suite.PLAN] == list(steps), steps
    failed = {name: (row["status"], (out / row.get("log", "none")).read_text()[-1500:] if "log" in row else "")
              for name, row in steps.items() if row["status"] != "exit 0"}
    assert not failed and proc.returncode == 0, failed
    tests = [row for row in rows if "test" in row]
    assert {r["outcome"] for r in tests} <= {"passed", "skipped"} and sum(r["outcome"] == "passed" for r in tests) >= 5
    assert any("every_preset" in r["test"] for r in tests) and any("bf16_mixed" in r["test"] for r in tests)
    assert len([r for r in rows if r.get("step") == "inference"]) == 4  # batch 1 and 16, two presets
    numbers = {name: row["numbers"] for name, row in steps.items() if "numbers" in row}
    assert numbers["train 950m, activation checkpointing"]["checkpointing"] is True
    assert numbers["train 950m, no checkpointing"]["checkpointing"] is False
    assert numbers["train 25m compiled"]["compile"] and numbers["train 25m compiled"]["recompiles_after_warmup"] == 0
    assert all(n["precision"] == "bf16-mixed" and n["seconds_per_batch"] > 0 for n in numbers.values())
    assert "| full (dense" in (out / steps["windowed attention N=16000 bf16 vs dense"]["log"]).read_text()


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Absolute imports of a file: (module level, inside functions), except optional and type-only ones.

    Optional: under ``try: … except ImportError``. A module-level import runs whenever the module is imported; one
    inside a function only when that function runs.
    """
    eager: set[str] = set()
    lazy: set[str] = set()

    def visit(node, optional=False, inside=False):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            optional = True
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        inside = inside or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        if not optional:
            (lazy if inside else eager).update(names)
        for child in ast.iter_child_nodes(node):
            visit(child, optional, inside)

    visit(ast.parse(path.read_text()))
    return eager, lazy


@pytest.mark.slow
def test_every_module_the_suite_imports_is_carried_or_in_the_image(dry_run):
    """taae's, the tests' and the benchmarks' modules that the dry run imported, and every import they write."""
    _, out, _ = dry_run
    imported = set()
    for log in (out / "logs").glob("*.log"):
        imported |= set(re.findall(r"^import time:.*\|\s*(\S+)\s*$", log.read_text(), re.M))
    scripts = {p.stem: p for p in (ROOT / "benchmarks").glob("*.py")}
    ours = {m for m in imported if m.split(".")[0] in ("taae", "tests") or m in scripts}
    assert {"taae.codec", "taae.training.module", "tests.training.test_module"} <= ours, sorted(ours)
    files = {scripts[m] if m in scripts else Path(importlib.util.find_spec(m).origin) for m in ours}
    # Not in -X importtime's log: the scripts run as __main__, the test files and conftest pytest imports itself.
    args = argparse.Namespace(device="cuda", quick=False, out=out, jsonl=out / "results.jsonl")
    named = {Path(word.split("::")[0]) for step in gpu_suite.PLAN for word in step.build(args)}
    files |= {p if p.is_absolute() else ROOT / p for p in named if p.suffix == ".py" and (ROOT / p).is_file()}
    files.add(ROOT / "tests/conftest.py")
    assert {ROOT / "tests/gpu/test_cuda.py", scripts["train_step"], scripts["gpu_suite"]} <= files
    # Module-level imports of every file, and the imports inside functions that the dry run really made.
    third_party = {name.split(".")[0] for f in files for name in _imports(f)[0]}
    third_party |= {name.split(".")[0] for f in files for name in _imports(f)[1]} & {m.split(".")[0] for m in imported}
    third_party -= set(sys.stdlib_module_names) | {"taae", "tests", "__future__"} | set(scripts)
    dists = metadata.packages_distributions()
    available = image_packages() | set(carried())
    missing = {m: dists.get(m) for m in third_party - set(NOT_ON_THE_PATH)
               if not {canonicalize_name(d) for d in dists.get(m, [m])} & available}
    assert not missing, f"the GPU suite imports modules that neither benchmarks/gpu_wheels.sh nor the image has: " \
                        f"{missing}"

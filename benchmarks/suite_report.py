"""A pytest plugin of the GPU suite: one JSON line per finished test, appended the moment it finishes.

Loaded by ``benchmarks/gpu_suite.py`` as ``-p suite_report`` (benchmarks/ on PYTHONPATH). It appends to the file
named by ``TAAE_SUITE_JSONL``, tagged with ``TAAE_SUITE_STEP``, so a step that times out on its fifth test still
reports the first four (``pytest -q`` with a JUnit file writes nothing until the session ends).
"""

from __future__ import annotations

import json
import os


def pytest_runtest_logreport(report) -> None:
    path = os.environ.get("TAAE_SUITE_JSONL")
    # One line per test: its call, or the setup/teardown phase that failed or skipped it.
    if not path or not (report.when == "call" or report.outcome != "passed"):
        return
    row = {"step": os.environ.get("TAAE_SUITE_STEP", ""), "test": report.nodeid, "phase": report.when,
           "outcome": report.outcome, "seconds": round(report.duration, 3)}
    if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
        row["reason"] = report.longrepr[2]
    elif report.outcome == "failed":
        row["error"] = str(report.longrepr)[-2000:]
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")

"""Smoke run of benchmarks/tokenize_throughput.py: batch 1 and batched side by side, tokens checked equal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tokenize_throughput_reports_batch_1_and_batched(tmp_path):
    command = [sys.executable, "benchmarks/tokenize_throughput.py", "--models", "tiny", "--files", "4",
               "--seconds", "1", "--shard-size", "2", "--batch-seconds", "4", "--length-steps", "2",
               "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    header, row = run.stdout.strip().splitlines()[-2:]
    assert "h audio/h b=1" in header and "h audio/h batched" in header
    assert row.split()[0] == "tiny" and row.endswith("×")

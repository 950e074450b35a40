"""Smoke run of benchmarks/scale_recipe.py: one variant, one batch, the same train → evaluate → table path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import synth_speech

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scale_recipe_smoke(tmp_path):
    data = tmp_path / "speech"
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        (data / split).mkdir(parents=True)
        for i in range(n):
            sf.write(data / split / f"{i}.wav", synth_speech(2.0, seed=i)[0].numpy(), 16000)
    out = tmp_path / "out"
    command = [sys.executable, "benchmarks/scale_recipe.py", "--out", str(out), "--steps", "1", "--warmup", "0",
               "--smoke", "--variants", "balanced", "--data-root", str(data), "--workers", "1"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    (row,) = json.loads((out / "scale_recipe.json").read_text())
    assert row["variant"] == "balanced" and row["batches"] == 1 and row["preset"] == "700bps"
    # The adversarial terms acted (warm-up 0): the balancer logged a share for each of them.
    header = (out / "balanced" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/share/adv_feat" in header and "train/share/waveform" in header
    for key in ("si_sdr", "stoi", "pesq_wb", "mel", "sign_corr"):
        assert row[key] is not None and abs(row[key]) < 1e3, (key, row[key])
    # A finished variant is read back, not retrained.
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "batches" not in again.stderr

"""Every script in benchmarks/ runs: a smoke run of each, at tiny sizes, through its own command line.

A benchmark that nobody runs rots (``cpu_inference.py --dac`` stopped when dac16k.yaml became an overlay), so each
script here has a row in ``SMOKE``: the arguments that shrink it to seconds, and a string its output must show.
Scripts covered elsewhere name the test that runs them; a new script without either fails
``test_every_benchmark_has_a_smoke_run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import synth_speech

ROOT = Path(__file__).resolve().parents[2]
NO_AUDIO = "/nonexistent"  # --audio: no demo folder, the scripts' speech-like synthetic instead

SMOKE: dict[str, tuple[list[str], str]] = {
    "attention.py": (["--device", "cpu", "--lengths", "64", "--tokens", "64", "--heads", "1", "--head-dim", "16",
                      "--backends", "full", "chunked", "--reps", "1"], "| chunked | 64 | 1 |"),
    "codec_speed.py": (["--seconds", "0.5", "--reps", "1", "--threads", "1", "--presets", "700bps",
                        "--audio", NO_AUDIO], "700bps"),
    # 25m through the stable-audio-tools layout conversion (official_layout.py); --dac is its own test below.
    "cpu_inference.py": (["--sizes", "25m", "--seconds", "0.2", "--rounds", "1", "--threads", "1",
                          "--skip", "fp32+compile"], "| 25m | taae onnx |"),  # the last taae row
    "full_size.py": (["--config", str(ROOT / "configs/taae/tiny.yaml"), "--seconds", "0.5", "--chunks", "0",
                      "--threads", "1", "--audio", NO_AUDIO], "whole"),
    "long_file.py": (["--seconds", "2", "--chunk-seconds", "1", "--overlaps", "0", "2", "--threads", "1",
                      "--skip-memory", "--audio", ""], "overlap"),
    "streaming.py": (["--seconds", "0.5", "--chunk-frames", "1", "--threads", "1", "--audio", NO_AUDIO],
                     "latency ms"),
    "tokenize_throughput.py": (["--models", "tiny", "--files", "2", "--seconds", "0.5", "--shard-size", "1",
                                "--threads", "1"], "tiny"),
    # Needs the official packages' own venvs (scripts/official_env.sh): its command line only.
    "official_worker.py": (["--help"], "--attention"),
}
ELSEWHERE = {
    "gpu_suite.py": "tests/benchmarks/test_gpu_suite.py (the dry run)",
    "gpu_suite.sh": "tests/benchmarks/test_gpu_suite.py (the dry run)",
    "train_step.py": "tests/benchmarks/test_gpu_suite.py (every training step of the dry run)",
    "suite_report.py": "tests/benchmarks/test_gpu_suite.py (the dry run's per-test lines)",
    "gpu_wheels.sh": "tests/benchmarks/test_gpu_wheels.py (--list; downloading needs PyPI)",
    "official_layout.py": "cpu_inference.py's smoke run (the 25m and dac16k layouts)",
    "recipe_ablation.py": "test_recipe_ablation_calibrates below",
    "scale_recipe.py": "tests/benchmarks/test_scale_recipe.py (one variant, one batch, trained and scored)",
    "streaming_tokens.py": "tests/codec/test_streaming.py (the streaming-token benchmark's smoke run)",
    "stage2.py": "test_stage2_runs_both_stages_and_prints_one_table below",
    "learning_curves.py": "test_learning_curves_smoke_writes_png_and_csv below",
}


def run(script: str, args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_every_benchmark_has_a_smoke_run():
    scripts = {p.name for p in (ROOT / "benchmarks").iterdir() if p.suffix in (".py", ".sh")}
    missing = scripts - set(SMOKE) - set(ELSEWHERE)
    assert not missing and scripts == set(SMOKE) | set(ELSEWHERE), f"benchmarks/ without a smoke run: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_smoke(script, tmp_path):
    args, expected = SMOKE[script]
    proc = run(script, args, cwd=tmp_path)
    assert proc.returncode == 0, f"{script} {' '.join(args)}:\n{proc.stderr[-3000:]}"
    assert expected in proc.stdout, proc.stdout[-3000:]


@pytest.mark.slow
def test_cpu_inference_dac_writes_its_row(tmp_path):
    """The README's DAC figure comes from ``cpu_inference.py --dac``: dac16k.yaml composed on the RVQGAN recipe."""
    proc = run("cpu_inference.py", ["--sizes", "--dac", "--seconds", "0.2", "--rounds", "1", "--threads", "1",
                                    "--json", str(tmp_path / "r.json")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "r.json").read_text())
    assert list(rows) == ["dac16k"] and rows["dac16k"]["taae fp32"]["rtf"] > 0
    onnx = rows["dac16k"]["taae onnx"]  # the RVQGAN in ONNX Runtime: the same tokens, the same audio to 1e-4
    assert onnx["rtf"] > 0 and onnx["agreement"]["tokens_vs_fp32"] == 1.0 and onnx["agreement"]["audio_vs_fp32"] <= 1e-4


@pytest.mark.slow
def test_long_file_memory_worker(tmp_path):
    proc = run("long_file.py", ["--memory-worker", "--minutes", "0.02", "--chunk-seconds", "0.5", "--threads", "1",
                                "--audio", ""])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"] > 0


@pytest.mark.slow
def test_recipe_ablation_calibrates(tmp_path):
    """The equal-time calibration of the quickstart variant (the full ablation trains for hours)."""
    data = tmp_path / "speech"
    for split in ("train", "val", "test"):
        (data / split).mkdir(parents=True)
        sf.write(data / split / "0.wav", synth_speech(2.0)[0].numpy(), 16000)
    proc = run("recipe_ablation.py", ["--out", str(tmp_path / "out"), "--variants", "quickstart", "--rounds", "1",
                                      "--calibrate-only", "--calibrate-batches", "2", "--data-root", str(data)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "calibration.json").read_text())["quickstart"]["recon"] > 0


@pytest.mark.slow
def test_stage2_runs_both_stages_and_prints_one_table(tmp_path):
    """Stage 1, stage 2 with and without the WavLM term, three evaluations: one batch each, on synthetic speech."""
    data = tmp_path / "speech"
    for split, n in (("train", 8), ("val", 2), ("test", 2)):  # one batch of the demo config's 8 × 2 s crops
        (data / split).mkdir(parents=True)
        for i in range(n):
            sf.write(data / split / f"{i}.wav", synth_speech(2.5, seed=i)[0].numpy(), 16000)
    proc = run("stage2.py", ["--out", str(tmp_path / "out"), "--data-root", str(data), "--stage1-batches", "1",
                             "--stage2-batches", "1"], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| stage")]
    assert [r.split("|")[1].strip() for r in rows] == ["stage 1", "stage 2, WavLM term", "stage 2, weight 0 (control)"]
    for row in rows:  # every metric scored: no NaN cell
        assert "nan" not in row, row
    # stage 2 again on that finished stage 1 (--stage1): not retrained, the same stage-1 row
    stage1 = tmp_path / "out" / "stage1"
    before = (stage1 / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    again = run("stage2.py", ["--out", str(tmp_path / "again"), "--data-root", str(data), "--stage1", str(stage1),
                              "--stage2-batches", "1"], cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (stage1 / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before
    assert not (tmp_path / "again" / "stage1").exists()
    assert [line for line in again.stdout.splitlines() if line.startswith("| stage 1 ")] == rows[:1]


def test_stage2_refuses_a_stage1_folder_without_a_run(tmp_path):
    (tmp_path / "run" / "tb").mkdir(parents=True)
    (tmp_path / "run" / "tb" / "config.yaml").write_text("model: {}\n")
    proc = run("stage2.py", ["--out", str(tmp_path / "out"), "--stage1", str(tmp_path / "run")], cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(f"missing {tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}")
    assert not (tmp_path / "out").exists()  # refused before writing anything


@pytest.mark.slow
def test_learning_curves_smoke_writes_png_and_csv(tmp_path):
    """Two variants to 0.02 and 0.04 CPU minutes on synthetic speech, four checkpoints and Codec 2 scored."""
    data = tmp_path / "speech"
    for split, n in (("train", 8), ("val", 1), ("test", 2)):  # one batch of the quickstart's 8 × 1 s crops
        (data / split).mkdir(parents=True)
        for i in range(n):
            sf.write(data / split / f"{i}.wav", synth_speech(1.5, seed=i)[0].numpy(), 16000)
    figure = tmp_path / "curves.png"
    proc = run("learning_curves.py", ["--smoke", "--out", str(tmp_path / "out"), "--data-root", str(data),
                                      "--figure", str(figure)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert figure.is_file() and "| istft | 0.04 |" in proc.stdout, proc.stdout[-3000:]
    rows = figure.with_suffix(".csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:5]] == [["patch", "0.02"], ["patch", "0.04"], ["istft", "0.02"],
                                                     ["istft", "0.04"]]

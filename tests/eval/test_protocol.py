"""The field's protocol end to end: ``evaluate.py`` on a LibriSpeech-layout folder with baselines from local
transformers / taae-imported weights and the WER, dWER and SIM columns from local model folders."""

from __future__ import annotations

import csv
import json
import math

import pytest

from taae.eval.run import main
from tests.eval.speech_folders import TRANSCRIPTS, librispeech

DAC = "tests/fixtures/interop/dac_tiny/weights.pth"
ROWS = ["encodec_1500bps", "mimi_687.5bps", "dac_1q", "stable-codec_700bps", "identity"]
STABLE_CODEC = "tests/fixtures/interop/stable_codec_small"
SPEECH = ["wer", "dwer", "sim"]


def _args(data, out, *extra):
    return ["--checkpoint", "none", "--data", str(data), "--out", str(out), "--references", "identity",
            "--workers", "0", "--no-mos", "--examples", "1", *extra]


@pytest.fixture(scope="module")
def protocol(hf_folders, tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    data = librispeech(root, seconds=0.5)
    (root / "subset.txt").write_text("1089-134686-0000\n121-121726-0000\n")
    rc = main(_args(data, root / "out", "--subset", str(root / "subset.txt"),
                    "--baseline", f"encodec={hf_folders['encodec']}", "--baseline", f"mimi={hf_folders['mimi']}@5",
                    "--baseline", f"dac={DAC}@1q", "--baseline", f"stable-codec={STABLE_CODEC}@700bps",
                    "--asr", str(hf_folders["hubert"]), "--speaker", str(hf_folders["wavlm"])))
    assert rc == 0
    return root / "out"


def test_every_row_and_column_present_and_finite(protocol):
    report = json.loads((protocol / "report.json").read_text())
    assert sorted(report["systems"]) == sorted(ROWS)
    assert all(m in report["metrics"] for m in SPEECH)
    for name, s in report["systems"].items():
        for m in report["metrics"]:
            if m == "noise_floor":  # undefined here: these 0.5 s clips have no pause 40 dB below their peak
                assert s["metrics"][m]["count"] == 0, name
                continue
            assert s["metrics"][m]["count"] == 2 and math.isfinite(s["metrics"][m]["mean"]), (name, m)
        assert math.isfinite(s["corpus"]["wer"]) and math.isfinite(s["corpus"]["dwer"])
    assert report["systems"]["identity"]["metrics"]["dwer"]["mean"] == 0.0
    assert report["systems"]["identity"]["metrics"]["sim"]["mean"] == pytest.approx(1.0, abs=1e-6)
    mimi = report["systems"]["mimi_687.5bps"]
    assert mimi["bitrate"] == 687.5 and mimi["model_rate"] == 24000 and mimi["weights_hash"]
    assert report["systems"]["dac_1q"]["model_rate"] == 16000
    md = (protocol / "report.md").read_text()
    assert "| WER ↓ | dWER ↓ | SIM ↑ |" in md
    assert "mimi_687.5bps: weights " in md and "resampled 16000→24000→16000 Hz" in md


def test_per_utterance_jsonl_and_csv(protocol):
    lines = [json.loads(x) for x in (protocol / "per_utterance.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * len(ROWS)  # the subset's two files × every system
    assert {x["file"].split("/")[-1] for x in lines} == {"1089-134686-0000.flac", "121-121726-0000.flac"}
    for x in lines:
        assert {"si_sdr", "mel", "stft", "pesq_wb", "stoi", *SPEECH} <= set(x) and x["system"] in ROWS
        assert all(isinstance(x[m], float) and math.isfinite(x[m]) for m in SPEECH)
        assert x["texts"]["transcript"] == TRANSCRIPTS[x["file"].split("/")[-1][:-5]]
    rows = list(csv.DictReader((protocol / "per_file.csv").open()))
    assert len(rows) == len(lines) and all(rows[0][m] != "" for m in SPEECH)


def test_librispeech_without_transcripts_falls_back_to_dwer(hf_folders, tmp_path):
    data = librispeech(tmp_path, seconds=0.3, transcripts=False)
    assert main(_args(data, tmp_path / "out", "--max-files", "1", "--asr", str(hf_folders["hubert"]))) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "wer" not in report["metrics"] and "dwer" in report["metrics"] and "sim" not in report["metrics"]
    assert any(n.startswith("WER absent: the data has no transcripts") for n in report["notes"])


def test_without_model_folders_no_new_columns(tmp_path):
    data = librispeech(tmp_path, seconds=0.3)
    assert main(_args(data, tmp_path / "out", "--max-files", "1")) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert not set(SPEECH) & set(report["metrics"]) and list(report["systems"]) == ["identity"]
    assert "WER/dWER and SIM absent: no --asr / --speaker model folder given" in report["notes"]


@pytest.mark.parametrize("flag", ["--asr", "--speaker", "--baseline"])
def test_wrong_folder_is_one_line_and_the_rest_is_kept(hf_folders, tmp_path, flag):
    data = librispeech(tmp_path, seconds=0.3)
    wrong = tmp_path / "not_a_model"
    wrong.mkdir()
    value = f"mimi={wrong}" if flag == "--baseline" else str(wrong)
    assert main(_args(data, tmp_path / "out", "--max-files", "1", flag, value)) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    lines = [n for n in report["notes"] if str(wrong) in n]
    assert len(lines) == 1 and "not a transformers model folder (no config.json)" in lines[0]
    assert list(report["systems"]) == ["identity"] and not set(SPEECH) & set(report["metrics"])
    assert math.isfinite(report["systems"]["identity"]["metrics"]["si_sdr"]["mean"])

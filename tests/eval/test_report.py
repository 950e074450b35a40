import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from taae.eval.inputs import list_audio_files
from taae.eval.report import markdown_table, write_report
from taae.eval.results import EvalReport, FileResult, report_notes, summarize, summarize_system, table_header
from taae.eval.token_stats import EntropyStats

ROOT = Path(__file__).resolve().parents[2]
METRICS = ["si_sdr", "pesq_wb"]


def test_summarize_hand_made_numbers():
    s = summarize([1.0, 2.0, 3.0, math.nan])
    assert (s.mean, s.std, s.count, s.failures) == (2.0, 1.0, 3, 1)
    one = summarize([5.0])
    assert (one.mean, one.std, one.count) == (5.0, None, 1)
    none = summarize([math.nan, math.nan])
    assert (none.mean, none.count, none.failures) == (None, 0, 2)


def _results():
    rows = []
    for i, (a, b) in enumerate([(10.0, 3.0), (14.0, math.nan), (12.0, 4.0)]):
        rows.append(FileResult(f"f{i}.wav", "taae_700bps", 2.0, {"si_sdr": a, "pesq_wb": b},
                               {"pesq_wb": "NoUtterancesError"} if math.isnan(b) else {},
                               encode_seconds=0.2, decode_seconds=0.4, seconds=0.6))
        rows.append(FileResult(f"f{i}.wav", "mulaw8", 2.0, {"si_sdr": 38.0, "pesq_wb": 4.6}, seconds=0.1))
        rows.append(FileResult(f"f{i}.wav", "identity", 2.0, {"si_sdr": 100.0, "pesq_wb": 4.64}))
    rows.append(FileResult("f3.wav", "taae_400bps", 2.0, {"si_sdr": math.nan, "pesq_wb": math.nan},
                           {"system": "RuntimeError: boom"}))
    return rows


def _report(rows):
    ent = EntropyStats("700bps", 25.0, 150, [15625, 15625], [0.01, 0.01], [6.0, 5.0], [6.1, 5.1], [True, True],
                       11.0, 275.0, 700.0, 25 * 2 * math.log2(15625), 2, 50.0)
    systems = [
        summarize_system("identity", rows, metrics=METRICS),
        summarize_system("taae_700bps", rows, "codec", 700.0, METRICS, preset="700bps", entropy=ent,
                         tokens_per_second=50.0),
        summarize_system("mulaw8", rows, bitrate=128000.0, metrics=METRICS),
        summarize_system("taae_400bps", rows, "codec", 400.0, METRICS, preset="400bps"),
    ]
    settings = {"data": "/data/test", "num_files": 3, "preprocessing": "mono, 16 kHz, -20 LUFS", "device": "cpu"}
    return EvalReport(settings=settings, systems=systems, metrics=METRICS, notes=["MOS skipped: test"])


def test_system_summary():
    rows = _results()
    s = summarize_system("taae_700bps", rows, "codec", 700.0, METRICS)
    assert s.num_files == 3 and s.failed_files == 0 and s.errors == {"pesq_wb": 1}
    assert s.metrics["si_sdr"].mean == 12.0 and s.metrics["si_sdr"].std == 2.0
    assert s.metrics["pesq_wb"].count == 2 and s.metrics["pesq_wb"].failures == 1
    assert s.encode_rtf == pytest.approx(0.1) and s.decode_rtf == pytest.approx(0.2)
    failed = summarize_system("taae_400bps", rows, "codec", 400.0, METRICS)
    assert failed.failed_files == 1 and failed.metrics["si_sdr"].count == 0 and failed.encode_rtf is None


def test_write_report(tmp_path):
    rows = _results()
    report = _report(rows)
    assert [s.name for s in report.sorted_systems()] == ["taae_400bps", "taae_700bps", "mulaw8", "identity"]
    paths = write_report(report, rows, tmp_path)
    data = json.loads(paths["json"].read_text())  # strict JSON: NaN became null
    assert list(data["systems"]) == ["taae_400bps", "taae_700bps", "mulaw8", "identity"]
    assert data["systems"]["taae_400bps"]["metrics"]["si_sdr"]["mean"] is None
    assert data["systems"]["taae_700bps"]["entropy"]["entropy_bitrate"] == 275.0
    assert data["settings"]["num_files"] == 3

    md = paths["markdown"].read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| taae") or ln.startswith("| mulaw")]
    assert [ln.split("|")[1].strip() for ln in table] == ["taae_400bps", "taae_700bps", "mulaw8"]
    assert "SI-SDR ↑" in md and "enc RTF ↓" in md and "12.00 ± 2.00" in md
    assert "275" in table[1] and "| 50 |" in table[1]
    assert "paper" in md and "not directly comparable" in md and "-20 LUFS" in md
    assert "taae_400bps: system 1" in md and "MOS skipped" in md

    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and table[3]["pesq_wb"] == "" and "NoUtterances" in table[3]["errors"]

    # The plot and the page come with every report, the plot shown in the Markdown too.
    assert paths["plot"].is_file() and paths["html"].is_file()
    assert md.rstrip().endswith("![bitrate vs quality](rate_quality.png)")


def test_mos_column_names_its_model():
    report = _report(_results())
    assert all("DNSMOS" not in n for n in report_notes(report))
    report.metrics = [*METRICS, "mos"]
    for s in report.systems:
        s.metrics["mos"] = summarize([3.0])
    assert "DNSMOS ↑" in table_header(report)
    (note,) = [n for n in report_notes(report) if "DNSMOS" in n]
    assert "P.835" in note and "MOSNet" in note and "offline" in note


def test_markdown_without_entropy():
    rows = _results()
    report = _report(rows)
    report.systems = [s for s in report.systems if s.entropy is None]
    assert "frames ≪ vocabulary" not in markdown_table(report)


def test_list_audio_files(tmp_path):
    (tmp_path / "d" / "x").mkdir(parents=True)
    for name in ("d/b.wav", "d/x/a.flac", "d/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_audio_files(tmp_path / "d")] == ["b.wav", "a.flac"]
    (tmp_path / "m.txt").write_text("# test set\nd/b.wav\n/abs/c.wav\n")
    assert list_audio_files(tmp_path / "m.txt") == [tmp_path / "d/b.wav", Path("/abs/c.wav")]
    (tmp_path / "m.tsv").write_text("id\tpath\tdur\n1\td/b.wav\t1.0\n")
    assert list_audio_files(tmp_path / "m.tsv") == [tmp_path / "d/b.wav"]
    (tmp_path / "m.jsonl").write_text('{"audio_filepath": "d/x/a.flac", "duration": 1}\n')
    assert list_audio_files(tmp_path / "m.jsonl", max_files=1) == [tmp_path / "d/x/a.flac"]
    with pytest.raises(FileNotFoundError):
        list_audio_files(tmp_path / "missing")
    with pytest.raises(ValueError, match="no audio files"):
        list_audio_files(_empty(tmp_path))


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.mark.slow
def test_evaluate_cli_end_to_end(tmp_path, speech):
    data = tmp_path / "data"
    data.mkdir()
    sf.write(data / "a.wav", speech(1.0, 16000, seed=1)[0].numpy(), 16000)
    sf.write(data / "b.wav", speech(0.8, 22050, seed=2)[0].numpy(), 22050)  # resampled by preprocessing
    out = tmp_path / "out"
    cmd = [sys.executable, "evaluate.py", "--checkpoint", "none", "--data", str(data), "--references", "mulaw",
           "--out", str(out), "--workers", "1", "--examples", "1", "--no-mos"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| mulaw8 | 128000 |" in proc.stdout
    assert proc.stdout.rstrip().endswith(f"listening report: {(out / 'report.html').resolve()}")
    for name in ("report.json", "report.md", "per_file.csv"):
        assert (out / name).is_file()
    data = json.loads((out / "report.json").read_text())
    summary = data["systems"]["mulaw8"]
    assert summary["num_files"] == 2 and summary["metrics"]["stoi"]["mean"] > 0.99
    assert data["settings"]["num_files"] == 2 and data["settings"]["sample_rate"] == 16000
    assert sorted(p.name for p in (out / "examples").rglob("*.wav")) == ["000_a.wav", "000_a.wav"]
    assert (out / "report.html").is_file() and (out / "examples" / "mulaw8" / "000_a.png").is_file()


def test_evaluate_rejects_nothing_to_do(tmp_path, speech):
    from taae.eval.run import EvalConfig, evaluate

    sf.write(tmp_path / "a.wav", speech(0.3, 16000)[0].numpy(), 16000)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(EvalConfig(data=str(tmp_path), out=str(tmp_path / "o"), references="none"))

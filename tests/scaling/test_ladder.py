"""Ladder files: composition order, selection, and errors that name the file and the key."""

import pytest

from taae.scaling.files import read_json, write_json
from taae.scaling.ladder import load_ladder


def _ladder(tmp_path, text):
    for name in ("a.yaml", "b.yaml", "size.yaml", "common.yaml"):
        (tmp_path / name).write_text("{}\n")
    path = tmp_path / "ladder.yaml"
    path.write_text(text.format(d=tmp_path))
    return path


GOOD = """
budget: audio_seconds=10
common: [{d}/common.yaml]
evaluation: {{data: {d}, presets: [700bps]}}
families:
  taae: {{configs: [{d}/a.yaml, {d}/b.yaml], rungs: {{s: {d}/size.yaml, m: [{d}/size.yaml, {d}/a.yaml]}}}}
  rvqgan: {{rungs: {{s: {d}/size.yaml}}}}
"""


def test_rungs_compose_family_then_size_then_common(tmp_path):
    ladder = load_ladder(_ladder(tmp_path, GOOD))
    assert [r.key for r in ladder.rungs] == ["taae/s", "taae/m", "rvqgan/s"]
    assert [p.name for p in ladder.rungs[1].configs] == ["a.yaml", "b.yaml", "size.yaml", "a.yaml", "common.yaml"]
    assert [p.name for p in ladder.rungs[2].configs] == ["size.yaml", "common.yaml"]
    assert str(ladder.budget) == "audio_seconds=10" and ladder.name == "ladder" and ladder.out is None
    assert [r.key for r in ladder.select(["s"])] == ["taae/s", "rvqgan/s"]
    assert [r.key for r in ladder.select(["taae"])] == ["taae/s", "taae/m"]
    assert [r.key for r in ladder.select(["rvqgan/s"])] == ["rvqgan/s"]
    with pytest.raises(ValueError, match=r"no rung or family \['xl'\]"):
        ladder.select(["xl"])


@pytest.mark.parametrize("edit,error,match", [
    (lambda t: t.replace("budget:", "budgt:"), ValueError, r"unknown keys \['budgt'\]"),
    (lambda t: t.replace("size.yaml}}", "missing.yaml}}"), FileNotFoundError, r"families.rvqgan.rungs.s: .*missing"),
    (lambda t: t.replace("presets: [700bps]", "preset: 700bps"), ValueError, r"evaluation .*preset"),
    (lambda t: t.replace("audio_seconds=10", "steps=10"), ValueError, "not one of"),
    (lambda t: t.replace("rungs: {{s: {d}/size.yaml}}", "rungs: {{}}"), ValueError, "at least one rung"),
], ids=["unknown-key", "missing-file", "evaluation-key", "budget-kind", "no-rungs"])
def test_errors_name_the_file_and_key(tmp_path, edit, error, match):
    with pytest.raises(error, match=match):
        load_ladder(_ladder(tmp_path, edit(GOOD)))


def test_missing_ladder_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="ladder file not found"):
        load_ladder(tmp_path / "nope.yaml")


def test_json_writes_are_atomic_and_readable(tmp_path):
    path = write_json(tmp_path / "sub" / "r.json", {"x": float("nan"), "y": [1.5]})
    assert read_json(path) == {"x": None, "y": [1.5]}
    assert not [p for p in path.parent.iterdir() if p.name != "r.json"]  # no temporary file left behind
    assert path.stat().st_mode & 0o044  # readable by others, like any file the user keeps


def test_a_preset_written_as_a_string_is_one_preset(tmp_path):
    # Bug on main: `presets: 700bps` became the presets 7, 0, 0, b, p, s (and preset 7 was trained and scored).
    ladder = load_ladder(_ladder(tmp_path, GOOD.replace("presets: [700bps]", "presets: 700bps")))
    assert ladder.evaluation.presets == ["700bps"]


@pytest.mark.parametrize("text,match", [
    (GOOD + "guard_time: [1, 2\n", "is not valid YAML"),
    (GOOD + "guard_time: soon\n", r"guard_time must be \"DD:HH:MM:SS\""),
], ids=["yaml-syntax", "guard-time"])
def test_scaling_command_errors_are_one_line(tmp_path, capsys, text, match):
    # Bug on main: a YAML syntax error (yaml.ScannerError) and a bad guard_time escaped as tracebacks.
    import re

    from taae.scaling.__main__ import main

    assert main(["sizes", "--ladder", str(_ladder(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(match, err) and "Traceback" not in err

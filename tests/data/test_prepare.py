"""taae prepare: folder/manifest -> lhotse Shar, the folder module's order and skips, resumable, lhotse-readable."""

import gzip
import json
from pathlib import Path

import pytest
import soundfile as sf

from taae.data.prepare import prepare, shard_names
from tests.conftest import synth_speech


def write_folder(root, count, seconds=0.3):
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        folder = root / "sub" if i % 3 == 0 else root
        sf.write(folder / f"utt{i:02d}.wav", synth_speech(seconds, 16000, seed=i)[0].numpy(), 16000)
    return root


def ids_of(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line)["id"] for line in f]


def test_shards_keep_the_folder_order_and_skip_unreadable_files(tmp_path):
    src = write_folder(tmp_path / "src", 7)
    (src / "broken.wav").write_bytes((src / "utt01.wav").read_bytes()[:30])
    report = prepare(src, tmp_path / "shar", shard_size=3, progress=False)
    assert (report.shards, report.written, report.cuts) == (3, 3, 7)
    assert [(p.rsplit("/", 1)[-1], "unreadable" in why) for p, why in report.skipped] == [("broken.wav", True)]
    ids = [cid for n in range(3) for cid in ids_of(shard_names(tmp_path / "shar", n)[0])]
    assert ids == ["sub/utt00", "sub/utt03", "sub/utt06", "utt01", "utt02", "utt04", "utt05"]  # find_audio_files
    from lhotse import CutSet

    cuts = list(CutSet.from_shar(in_dir=tmp_path / "shar"))  # lhotse reads the folder as it is
    expected, _ = sf.read(src / "utt02.wav", dtype="float32")
    assert [c.id for c in cuts] == ids and (cuts[4].load_audio()[0] == expected).all()  # FLAC is lossless


def test_rerun_keeps_complete_shards_and_refuses_another_layout(tmp_path):
    src = write_folder(tmp_path / "src", 5)
    out = tmp_path / "shar"
    prepare(src, out, shard_size=2, progress=False)
    cuts1, rec1 = shard_names(out, 1)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    cuts1.unlink()  # as if killed between the two renames of shard 1
    (out / ".tmp-000002-999").mkdir()  # a dead run's temp folder
    report = prepare(src, out, shard_size=2, progress=False)
    assert (report.written, report.already_complete, report.cuts) == (1, 2, 5)
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert set(after) == set(before)
    assert all(after[n] == before[n] for n in after if ".000001." not in n)  # untouched
    report = prepare(src, out, shard_size=3, progress=False)  # another shard size: nothing is missing
    assert (report.written, report.added, report.cuts, report.skipped) == (0, 0, 5, [])


def all_ids(out):
    return sorted(cid for p in sorted(out.glob("cuts.*.jsonl.gz")) for cid in ids_of(p))


def test_a_rerun_adds_the_files_no_shard_holds_and_never_rewrites_finished_ones(tmp_path):
    # Bug on main: files added to the input were reported "skipped by an earlier run" (or refused), never prepared.
    src = write_folder(tmp_path / "src", 5)
    out = tmp_path / "shar"
    prepare(src, out, shard_size=2, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    sf.write(src / "utt015.wav", synth_speech(0.3, 16000, seed=15)[0].numpy(), 16000)  # sorts into shard 0
    sf.write(src / "zz.wav", synth_speech(0.3, 16000, seed=16)[0].numpy(), 16000)
    (src / "broken.wav").write_bytes(b"RIFF")
    report = prepare(src, out, shard_size=2, progress=False)
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in before.items())  # finished shards untouched
    assert report.added == 1 and report.cuts == 7 and all_ids(out) == sorted(
        ["sub/utt00", "sub/utt03", "utt01", "utt02", "utt04", "utt015", "zz"])
    assert [(Path(p).name, "unreadable" in why or "too short" in why or "RIFF" in why) for p, why in report.skipped] \
        == [("broken.wav", True)]
    assert not any("earlier run" in why for _, why in report.skipped)
    # a larger shard size adds nothing more, and says nothing is skipped but the unreadable file
    report = prepare(src, out, shard_size=4, progress=False)
    assert (report.written, report.added, report.cuts) == (0, 0, 7) and len(report.skipped) == 1
    from lhotse import CutSet

    assert sorted(c.id for c in CutSet.from_shar(in_dir=out)) == all_ids(out)


def test_a_rerun_over_another_input_stops_in_one_line(tmp_path):
    src = write_folder(tmp_path / "src", 3)
    out = tmp_path / "shar"
    prepare(src, out, shard_size=2, progress=False)
    (src / "utt01.wav").unlink()
    with pytest.raises(ValueError, match=r"cuts.000000.jsonl.gz holds cut 'utt01', which is not among the files of"):
        prepare(src, out, shard_size=2, progress=False)


def test_foreign_tmp_entries_in_out_are_left_alone(tmp_path):
    # Bug on main: every .tmp-* entry in OUT was deleted, whoever wrote it.
    src = write_folder(tmp_path / "src", 2)
    out = tmp_path / "shar"
    out.mkdir()
    (out / ".tmp-notes.txt").write_text("mine")
    (out / ".tmp-000001-42").mkdir()
    (out / ".tmp-000001-42" / "draft.txt").write_text("mine too")
    (out / ".tmp-000003-43").mkdir()  # a dead run of prepare's own (empty): removed
    prepare(src, out, shard_size=2, progress=False)
    assert (out / ".tmp-notes.txt").read_text() == "mine"
    assert (out / ".tmp-000001-42" / "draft.txt").exists() and not (out / ".tmp-000003-43").exists()


def test_parallel_prepare_writes_the_same_shards(tmp_path):
    src = write_folder(tmp_path / "src", 4)
    prepare(src, tmp_path / "one", shard_size=2, progress=False)
    prepare(src, tmp_path / "two", shard_size=2, jobs=2, progress=False)
    for n in range(2):
        for a, b in zip(shard_names(tmp_path / "one", n), shard_names(tmp_path / "two", n)):
            assert (gzip.decompress(a.read_bytes()) if a.suffix == ".gz" else a.read_bytes()) == \
                   (gzip.decompress(b.read_bytes()) if b.suffix == ".gz" else b.read_bytes())


def test_bad_arguments_raise_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        prepare(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        prepare(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="--shard-size"):
        prepare(tmp_path, tmp_path / "out", shard_size=0)


def test_a_truncated_wav_is_refused_by_training_and_prepare_as_encode_refuses_it(tmp_path):
    # Bug on main: check_file (training data, taae prepare) read a truncated WAV as a shorter valid one.
    from taae.data.files import check_file
    from taae.io.audio import AudioError

    src = write_folder(tmp_path / "src", 1, seconds=1.0)
    data = (src / "sub" / "utt00.wav").read_bytes()
    (src / "cut.wav").write_bytes(data[: 44 + 2 * 6000])
    with pytest.raises(AudioError, match=r"cut.wav is truncated: 6000 frames present"):
        check_file(src / "cut.wav")
    report = prepare(src, tmp_path / "shar", progress=False)
    assert report.cuts == 1 and [(Path(p).name, "truncated" in why) for p, why in report.skipped] == [("cut.wav", True)]

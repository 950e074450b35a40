"""taae prepare: folder/manifest -> lhotse Shar, the folder module's order and skips, resumable, lhotse-readable."""

import gzip
import json

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
    with pytest.raises(ValueError, match="another input or --shard-size"):
        prepare(src, out, shard_size=3, progress=False)


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

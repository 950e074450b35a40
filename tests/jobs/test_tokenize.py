"""taae tokenize: tokens equal `taae encode`, lhotse-readable, resumable after a crash, two processes equal one,
bad input refused in one line with nothing lost; taae tokens-export."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from taae.codec import Codec
from taae.data.prepare import prepare, shard_names
from taae.jobs import token_shards
from taae.jobs.lm_export import export_tokens
from taae.jobs.token_shards import load_manifest, read_token_shard
from taae.jobs.tokenize import tokenize
from taae.models.taae import TAAE, TAAEConfig
from tests.conftest import garble_first_member, synth_speech

ROOT = Path(__file__).resolve().parents[2]


def tiny_export(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = TAAE(TAAEConfig(stem_width=64, widths=(64,), strides=(2,), depths=(1,), head_dim=32, layer_scale_init=0.1))
    Codec(model).export(folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """7 files in 4 shards of 2; the first recording of shard 1 is corrupt. Returns (src, shar, model)."""
    root = tmp_path_factory.mktemp("tok")
    src = root / "src"
    src.mkdir()
    for i in range(7):
        sf.write(src / f"utt{i}.wav", synth_speech(0.3 + 0.1 * i, 16000, seed=i)[0].numpy(), 16000)
    shar = root / "shar"
    prepare(src, shar, shard_size=2, progress=False)
    garble_first_member(shard_names(shar, 1)[1])
    return src, shar, tiny_export(root / "model", 0)


def run(setup, out, **kw):
    kw.setdefault("preset", "700bps")
    return tokenize(str(setup[1]), out, str(setup[2]), accelerator="cpu", progress=False, **kw)


def all_cuts(out):
    return [c for s in load_manifest(out)["shards"] for c in read_token_shard(out, s)]


@pytest.mark.parametrize("token_format", ["npz", "tar"])
def test_tokens_equal_taae_encode_and_the_corrupt_cut_is_reported(setup, tmp_path, token_format):
    report = run(setup, tmp_path / "tok", token_format=token_format)
    assert (report.shards, report.written, report.cuts, report.skipped) == (4, 4, 6, 1)
    manifest = load_manifest(tmp_path / "tok")
    assert manifest["preset"] == "2x15625_700bps" and manifest["dtype"] == "uint16"
    assert manifest["shards"][1]["skipped"][0]["cut_id"] == "utt2"
    codec = Codec.load(setup[2])
    cuts = all_cuts(tmp_path / "tok")
    assert [c[0] for c in cuts] == ["utt0", "utt1", "utt3", "utt4", "utt5", "utt6"]
    for cut_id, tokens, _ in cuts:
        expected = codec.encode_file(setup[0] / f"{cut_id}.wav", "700bps").tokens[0].numpy().T  # (S, K)
        assert tokens.dtype == np.uint16 and np.array_equal(tokens, expected), cut_id
    assert manifest["frames"] == sum(len(c[1]) for c in cuts)


def test_tar_tokens_are_a_lhotse_shar_field(setup, tmp_path):
    from lhotse import CutSet

    run(setup, tmp_path / "tok", token_format="tar")
    fields = {"cuts": sorted(map(str, setup[1].glob("cuts.*"))),
              "codes": sorted(map(str, (tmp_path / "tok").glob("codes.*.tar")))}
    cuts = list(CutSet.from_shar(fields=fields))
    ours = {cid: t for cid, t, _ in all_cuts(tmp_path / "tok")}
    assert [c.id for c in cuts if c.has_custom("codes")] == list(ours)  # the corrupt cut has a placeholder
    for cut in cuts:
        if cut.has_custom("codes"):
            assert np.array_equal(cut.load_custom("codes"), ours[cut.id])


def test_a_crash_midway_then_a_rerun_writes_only_the_missing_shards(setup, tmp_path, monkeypatch):
    out = tmp_path / "tok"
    real, calls = token_shards.write_json, []

    def crash_on_third_summary(path, value):
        calls.append(path)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(path, value)

    monkeypatch.setattr(token_shards, "write_json", crash_on_third_summary)
    with pytest.raises(RuntimeError, match="killed"):
        run(setup, out)
    monkeypatch.undo()
    assert not (out / "manifest.json").exists() and (out / "tokens.000002.npz").exists()  # data, no summary
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if ".000000." in p.name or ".000001." in p.name}
    report = run(setup, out)
    assert (report.written, report.already_complete, report.cuts, report.skipped) == (2, 2, 6, 1)
    assert all((out / name).stat().st_mtime_ns == ns for name, ns in kept.items())
    fresh = run(setup, tmp_path / "fresh")
    assert json.loads((out / "manifest.json").read_text())["shards"] == load_manifest(tmp_path / "fresh")["shards"]
    assert fresh.cuts == report.cuts
    again = run(setup, out)  # nothing left to do
    assert (again.written, again.already_complete) == (0, 4)


def test_two_processes_equal_one_token_for_token(setup, tmp_path):
    run(setup, tmp_path / "one")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "taae", "tokenize", str(setup[1]), str(tmp_path / "two"), "-c", str(setup[2]),
           "-p", "700bps", "--devices", "2", "--accelerator", "cpu", "--quiet"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 shards (4 written, 0 already complete), 6 cuts" in done.stdout
    one, two = load_manifest(tmp_path / "one"), load_manifest(tmp_path / "two")
    assert one["shards"] == two["shards"] and one["cuts"] == two["cuts"] == 6
    for a, b in zip(all_cuts(tmp_path / "one"), all_cuts(tmp_path / "two")):
        assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_bad_input_is_refused_in_one_line_and_nothing_is_lost(setup, tmp_path):
    out = tmp_path / "tok"
    run(setup, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match=r"written by another job: preset '2x15625_700bps' \(this run: "
                                         r"'1x46656_400bps'\)"):
        run(setup, out, preset="400bps")
    other = tiny_export(tmp_path / "other", seed=1)
    with pytest.raises(ValueError, match="model_hash"):
        tokenize(str(setup[1]), out, str(other), "700bps", accelerator="cpu", progress=False)
    with pytest.raises(ValueError, match="token_format 'npz'"):
        run(setup, out, token_format="tar")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="SHAR_IN=.*no Shar shards"):
        tokenize(str(tmp_path / "empty"), tmp_path / "x", str(setup[2]), progress=False)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for args, message in (([str(tmp_path / "empty"), str(tmp_path / "x"), "-c", str(setup[2])], "no Shar shards"),
                          ([str(setup[1]), str(tmp_path / "x"), "-c", str(tmp_path / "none.ckpt")], "not found")):
        done = subprocess.run([sys.executable, "-m", "taae", "tokenize", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("taae tokenize: error:")
        assert message in lines[0]


def test_tokens_export_is_one_flat_memmap(setup, tmp_path):
    run(setup, tmp_path / "tok")
    info = export_tokens(tmp_path / "tok", tmp_path / "lm")
    modes = {name: (tmp_path / "lm" / name).stat().st_mode & 0o777 for name in ("tokens.npy", "offsets.npy")}
    assert modes["tokens.npy"] == modes["offsets.npy"], modes  # main wrote tokens.npy 0600 (mkstemp's mode)
    flat = np.load(tmp_path / "lm" / "tokens.npy", mmap_mode="r")
    offsets = np.load(tmp_path / "lm" / "offsets.npy")
    ids = (tmp_path / "lm" / "cut_ids.txt").read_text().split()
    cuts = all_cuts(tmp_path / "tok")
    assert flat.dtype == np.uint16 and flat.shape == (info["frames"], 2) and ids == [c[0] for c in cuts]
    for i, (_, tokens, _) in enumerate(cuts):
        assert np.array_equal(flat[offsets[i]:offsets[i + 1]], tokens)
    manifest = json.loads((tmp_path / "tok" / "manifest.json").read_text())
    manifest["shards_complete"] -= 1
    (tmp_path / "tok" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="3 of 4 shards are tokenized"):
        export_tokens(tmp_path / "tok", tmp_path / "lm2")


def test_batched_run_equals_one_cut_at_a_time_shard_for_shard(setup, tmp_path, monkeypatch):
    """--batch-seconds: cuts of equal frame counts share a forward, and every shard and the manifest come out
    as a one-cut-at-a-time run writes them (a zero-padded batch would change the shorter cuts' last tokens)."""
    import taae.jobs.tokenize as job

    src = tmp_path / "src"
    src.mkdir()
    for i, seconds in enumerate((1.0, 0.5, 1.0, 1.0, 0.5, 2.0, 0.5, 1.0)):  # 2 shards of 4, repeated lengths
        sf.write(src / f"u{i}.wav", synth_speech(seconds, 16000, seed=10 + i)[0].numpy(), 16000)
    prepare(src, tmp_path / "shar", shard_size=4, progress=False)
    groups = []
    encode_items = job.encode_items
    monkeypatch.setattr(job, "encode_items",
                        lambda c, items, *a: groups.append(len(items)) or encode_items(c, items, *a))
    kw = dict(preset="700bps", accelerator="cpu", progress=False)
    one = tokenize(str(tmp_path / "shar"), tmp_path / "one", str(setup[2]), **kw)
    many = tokenize(str(tmp_path / "shar"), tmp_path / "many", str(setup[2]), batch_seconds=2.0, **kw)
    assert max(groups) == 2 and sum(groups) == 8  # pairs of equal cuts within a shard share a forward
    assert (one.cuts, one.shards) == (many.cuts, many.shards) == (8, 2)
    a, b = load_manifest(tmp_path / "one"), load_manifest(tmp_path / "many")
    assert a["shards"] == b["shards"] and a["frames"] == b["frames"]
    for x, y in zip(all_cuts(tmp_path / "one"), all_cuts(tmp_path / "many"), strict=True):
        assert x[0] == y[0] and np.array_equal(x[1], y[1]) and x[2] == y[2]

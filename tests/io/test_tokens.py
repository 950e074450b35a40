"""Token file format: dtype choice, round trip, version and consistency checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taae.io.tokens import FORMAT_VERSION, TokenFile, storage_dtype


def make(vocab_sizes=(15625, 15625), frames=10, **overrides) -> TokenFile:
    g = torch.Generator().manual_seed(0)
    tokens = torch.stack([torch.randint(0, v, (frames,), generator=g) for v in vocab_sizes]).unsqueeze(0)
    values = dict(tokens=tokens, preset="2x15625_700bps", sample_rate=16000, num_samples=frames * 640 - 100,
                  frame_rate=25.0, model_hash="0123456789abcdef", vocab_sizes=vocab_sizes)
    values.update(overrides)
    return TokenFile(**values)


@pytest.mark.parametrize("vocab, dtype", [(2, np.uint8), (256, np.uint8), (257, np.uint16), (15625, np.uint16),
                                          (65536, np.uint16), (65537, np.uint32), (17**6, np.uint32),
                                          (2**32, np.uint32), (2**32 + 1, np.int64)])
def test_storage_dtype_is_smallest_safe(vocab, dtype):
    assert storage_dtype([3, vocab]) == np.dtype(dtype)


@pytest.mark.parametrize("vocab_sizes, dtype", [((256,) * 4, np.uint8), ((15625, 15625), np.uint16),
                                                ((17**6,), np.uint32)])
def test_round_trip(tmp_path, vocab_sizes, dtype):
    original = make(vocab_sizes)
    original.tokens[0, :, 0] = torch.tensor(vocab_sizes) - 1  # the largest token of every stage survives
    path = original.save(tmp_path / "sub" / "x.npz")
    with np.load(path) as data:
        assert data["tokens"].dtype == dtype
    loaded = TokenFile.load(path)
    assert loaded.tokens.dtype == torch.int64
    assert torch.equal(loaded.tokens, original.tokens)
    for name in ("preset", "sample_rate", "num_samples", "frame_rate", "model_hash", "vocab_sizes", "version",
                 "gain_db"):
        assert getattr(loaded, name) == getattr(original, name)
    assert loaded.duration == pytest.approx(original.num_samples / 16000)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        TokenFile.load(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a taae token file"):
        TokenFile.load(tmp_path / "text.npz")
    np.savez(tmp_path / "partial.npz", tokens=np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ValueError, match=r"missing fields \['format', 'version'"):
        TokenFile.load(tmp_path / "partial.npz")

    path = make().save(tmp_path / "ok.npz")
    arrays = dict(np.load(path))
    np.savez(tmp_path / "future.npz", **{**arrays, "version": np.int64(FORMAT_VERSION + 1)})
    with pytest.raises(ValueError, match=f"version {FORMAT_VERSION + 1} is not supported"):
        TokenFile.load(tmp_path / "future.npz")
    bad = arrays["tokens"].copy()
    bad[0, 1, 4] = 15625
    np.savez(tmp_path / "range.npz", **{**arrays, "tokens": bad})
    with pytest.raises(ValueError, match="stage 1, item 0, frame 4 holds 15625"):
        TokenFile.load(tmp_path / "range.npz")
    np.savez(tmp_path / "length.npz", **{**arrays, "num_samples": np.int64(10 * 640 + 1)})
    with pytest.raises(ValueError, match="num_samples=6401 does not fit 10 frames"):
        TokenFile.load(tmp_path / "length.npz")


def test_construction_checks():
    with pytest.raises(ValueError, match=r"expects tokens of shape \(B, 1, S\)"):
        TokenFile(**{**make().__dict__, "vocab_sizes": (15625,)})
    with pytest.raises(ValueError, match=r"shape \(1, K, S\)"):
        TokenFile(**{**make().__dict__, "tokens": torch.zeros(2, 2, 10, dtype=torch.long)})
    with pytest.raises(TypeError, match="integer"):
        TokenFile(**{**make().__dict__, "tokens": torch.zeros(1, 2, 10)})


def test_version_2_records_the_loudness_gain_and_version_1_still_reads(tmp_path):
    path = make(gain_db=15.25).save(tmp_path / "v2.npz")
    with np.load(path) as data:
        assert int(data["version"]) == FORMAT_VERSION == 2 and float(data["gain_db"]) == 15.25
    loaded = TokenFile.load(path)
    assert loaded.gain_db == 15.25 and loaded.level_gain() == pytest.approx(10 ** (-15.25 / 20))
    # A file as taae 0.1 wrote it: version 1, no gain_db.
    arrays = {k: v for k, v in np.load(path).items() if k != "gain_db"}
    np.savez(tmp_path / "v1.npz", **{**arrays, "version": np.int64(1)})
    old = TokenFile.load(tmp_path / "v1.npz")
    assert old.version == 1 and old.gain_db == 0.0 and torch.equal(old.tokens, loaded.tokens)
    np.savez(tmp_path / "v2_without_gain.npz", **arrays)
    with pytest.raises(ValueError, match=r"version-2 token file lacks fields \['gain_db'\]"):
        TokenFile.load(tmp_path / "v2_without_gain.npz")
    with pytest.raises(ValueError, match="gain_db must be a finite number"):
        make(gain_db=float("nan"))

"""Batched variable-length coding (taae.codec.batching): every item gets exactly its own single-item tokens."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from taae.codec.batching import group_by_frames
from tests.codec.test_codec import tiny_model
from tests.conftest import synth_speech

SECONDS = (0.3, 1.1, 2.5, 4.0, 7.0)


@pytest.fixture(scope="module")
def codec():
    from taae.codec import Codec

    return Codec(tiny_model())


@pytest.fixture(scope="module")
def wavs():
    # five lengths from 0.3 s to 7 s, plus three more of 4 s so that some items do share a forward
    return [synth_speech(s, seed=i) for i, s in enumerate((*SECONDS, 4.0, 4.0, 4.0))]


def test_group_by_frames_keeps_equal_lengths_together_and_bounds_groups():
    assert group_by_frames([3, 5, 3, 3, 5], None) == [[0, 2, 3], [1, 4]]
    assert group_by_frames([3, 5, 3, 3, 5], 6) == [[0, 2], [1], [3], [4]]
    assert group_by_frames([9], 2) == [[0]]  # an item longer than the limit still gets a group


def test_padded_batch_changes_tokens_of_shorter_items(codec, wavs):
    """The bug batching avoids: one zero-padded batch gives the shorter items other tokens near their end."""
    items = [codec.preprocess(w, 16000) for w in wavs[:5]]
    padded = torch.stack([F.pad(x, (0, items[-1].shape[-1] - x.shape[-1])) for x in items])
    batch = codec.encode_prepared(padded, "700bps")
    differ = [not torch.equal(codec.encode(w, 16000, "700bps")[0], t[:, : codec.encode(w, 16000).shape[-1]])
              for w, t in zip(wavs[:4], batch)]
    assert any(differ)


@pytest.mark.parametrize("preset", ["native", "700bps", "1000bps"])
def test_list_encode_equals_single_encode_exactly(codec, wavs, preset):
    batched = codec.encode(list(wavs), 16000, preset)
    assert len(batched) == len(wavs)
    for wav, tokens in zip(wavs, batched):
        assert torch.equal(tokens, codec.encode(wav, 16000, preset))


def test_padded_batch_with_lengths_equals_single_encode(codec, wavs):
    longest = max(w.shape[-1] for w in wavs)
    padded = torch.stack([F.pad(w, (0, longest - w.shape[-1])) for w in wavs])  # (B, 1, T)
    batched = codec.encode(padded, 16000, "700bps", lengths=[w.shape[-1] for w in wavs], batch_seconds=8.0)
    for wav, tokens in zip(wavs, batched):
        assert torch.equal(tokens, codec.encode(wav, 16000, "700bps"))


def test_batched_decode_equals_single_decode(codec, wavs):
    tokens = codec.encode(list(wavs), 16000, "700bps")
    sizes = [w.shape[-1] for w in wavs]
    audio = codec.decode(tokens, "700bps", num_samples=sizes)
    for t, n, wav in zip(tokens, sizes, audio):
        torch.testing.assert_close(wav, codec.decode(t, "700bps", n), atol=1e-5, rtol=1e-5)
    longest = max(t.shape[-1] for t in tokens)
    padded = torch.stack([F.pad(t[0], (0, longest - t.shape[-1])) for t in tokens])  # (B, K, S)
    again = codec.decode(padded, "700bps", lengths=[t.shape[-1] for t in tokens])
    for a, b in zip(again, codec.decode(tokens, "700bps")):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_bad_lengths_are_one_line_errors(codec, wavs):
    tokens = codec.encode(wavs[0], 16000, "700bps")  # (1, K, S)
    frames = tokens.shape[-1]
    with pytest.raises(ValueError, match=rf"lengths\[0\] = {frames + 1} frames is beyond the batch's {frames}"):
        codec.decode(tokens, "700bps", lengths=[frames + 1])
    with pytest.raises(ValueError, match="2 lengths for a batch of 1"):
        codec.decode(tokens, "700bps", lengths=[1, 1])
    with pytest.raises(ValueError, match="lengths need a padded"):
        codec.encode(wavs[0], 16000, lengths=[10])
    with pytest.raises(ValueError, match=r"num_samples\[0\]"):
        codec.decode([tokens[0]], "700bps", num_samples=[frames * codec.hop_length + 1])


def test_items_not_proven_exact_are_encoded_alone(codec, wavs, monkeypatch):
    """With a margin wider than any rounding cell no batched token is proven: every item takes the fallback."""
    import taae.codec.batching

    monkeypatch.setattr(taae.codec.batching, "EXACT_MARGIN", 1.0)
    alone = []
    monkeypatch.setattr(codec, "_encode", lambda w, p: alone.append(w.shape[0]) or type(codec)._encode(codec, w, p))
    four = [wavs[3], *wavs[5:]]  # four items of 4 s: one group
    batched = codec.encode(four, 16000, "700bps")
    assert alone == [1, 1, 1, 1]
    for wav, tokens in zip(four, batched):
        assert torch.equal(tokens, codec.encode(wav, 16000, "700bps"))

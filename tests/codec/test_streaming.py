"""Streaming a causal TAAE equals its offline forward: tokens exactly, audio to float rounding, at every preset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taae.codec import Codec
from taae.codec.streaming import (
    StreamingSession,
    algorithmic_latency,
    decode_step,
    encode_step,
    init_state,
    reset_state,
    streaming,
)
from taae.models import from_config
from taae.models.taae import TAAE, TAAEConfig

PRESETS = ["native", "400bps", "700bps", "1000bps"]
CHUNKS = [1, 2, 3, 7]
ROOT = Path(__file__).resolve().parents[2]
CAUSAL_TINY = [ROOT / "configs" / name for name in ("taae/tiny.yaml", "data/demo.yaml", "trainer/cpu.yaml",
                                                   "taae/quickstart.yaml", "taae/causal_tiny.yaml")]


def causal_model(seed: int = 0, **overrides) -> TAAE:
    """A small causal TAAE (hop 32) whose transformer shapes the output (LayerScale 1): left context 4 frames."""
    torch.manual_seed(seed)
    values = dict(patch_size=16, stem_width=32, widths=(32, 32), strides=(1, 2), depths=(1, 1), head_dim=16,
                  window=(4, 0), causal=True, layer_scale_init=1.0)
    return TAAE(TAAEConfig(**{**values, **overrides})).eval()


def stream(model, wav, chunks, preset=None):
    """Encode and decode ``wav`` (B, 1, S·hop) in chunks of ``chunks`` frames (an int, or a list cycled through)."""
    sizes = chunks if isinstance(chunks, list) else [chunks]
    hop, frames = model.hop_length, wav.shape[-1] // model.hop_length
    enc, dec = init_state(model, "encoder", wav.shape[0]), init_state(model, "decoder", wav.shape[0])
    tokens, audio, start, i = [], [], 0, 0
    while start < frames:
        end = min(frames, start + sizes[i % len(sizes)])
        t, enc = encode_step(model, wav[..., start * hop: end * hop], enc, preset)
        y, dec = decode_step(model, t, dec, preset)
        tokens.append(t)
        audio.append(y)
        start, i = end, i + 1
    return torch.cat(tokens, dim=-1), torch.cat(audio, dim=-1)


@pytest.fixture(scope="module")
def model():
    return causal_model()


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Chunks of a frame or two are tiny tensors: a second thread only adds overhead."""


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("preset", PRESETS)
def test_streaming_equals_offline_at_every_preset(model, preset, chunk):
    torch.manual_seed(1)
    wav = torch.randn(2, 1, 16 * model.hop_length) * 0.3  # 16 frames ≥ 3× the left context (4) at both rates
    tokens = model.encode(wav, preset)
    streamed_tokens, streamed_audio = stream(model, wav, chunk, preset)
    assert torch.equal(streamed_tokens, tokens)
    torch.testing.assert_close(streamed_audio, model.decode(tokens, preset), atol=1e-5, rtol=0)


def test_chunk_sizes_may_change_within_a_stream(model):
    wav = torch.randn(1, 1, 37 * model.hop_length) * 0.3
    tokens, audio = stream(model, wav, [3, 1, 7, 2], "700bps")
    assert torch.equal(tokens, model.encode(wav, "700bps"))
    torch.testing.assert_close(audio, model.decode(tokens, "700bps"), atol=1e-5, rtol=0)


def test_the_official_layout_streams_too():
    # identity_stride1 (taae.interop's layout): stride-1 stages without a conv; the stable-codec token rule.
    model = causal_model(seed=4, identity_stride1=True, token_rule="stable-codec")
    wav = torch.randn(1, 1, 16 * model.hop_length) * 0.3
    tokens, audio = stream(model, wav, 3, "700bps")
    assert torch.equal(tokens, model.encode(wav, "700bps"))
    torch.testing.assert_close(audio, model.decode(tokens, "700bps"), atol=1e-5, rtol=0)


def causal_tiny():
    """configs/taae/causal_tiny.yaml's model (hop 640, window (63, 0)), LayerScale 1 so attention shapes it."""
    torch.manual_seed(0)
    model = from_config(*CAUSAL_TINY).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    return model


def test_the_shipped_causal_config_streams_exactly():
    # The real geometry: hop 640, head dim 128, window (63, 0); 192 frames ≥ 3 × 63 at 25 Hz.
    model = causal_tiny()
    wav = torch.randn(1, 1, 192 * model.hop_length) * 0.1
    tokens, audio = stream(model, wav, 7)
    assert torch.equal(tokens, model.encode(wav))
    torch.testing.assert_close(audio, model.decode(tokens), atol=1e-5, rtol=0)


def test_a_reset_item_streams_like_a_fresh_single_stream(model):
    # Three streams in one batch that start at frames 0, 6 and 14: each equals its own single-item run.
    torch.manual_seed(2)
    hop, frames, starts = model.hop_length, 30, [0, 6, 14]
    wav = torch.randn(3, 1, frames * hop) * 0.3
    session = streaming(model, 3, "700bps")
    tokens, audio = [], []
    with session as s:
        for f in range(0, frames, 2):
            for item, start in enumerate(starts):
                if f == start and start > 0:
                    s.reset(item)
            t = s.encode(wav[..., f * hop: (f + 2) * hop])
            tokens.append(t)
            audio.append(s.decode(t))
    tokens, audio = torch.cat(tokens, dim=-1), torch.cat(audio, dim=-1)
    for item, start in enumerate(starts):
        alone = wav[item: item + 1, :, start * hop:]
        ref = model.encode(alone, "700bps")
        assert torch.equal(tokens[item: item + 1, :, start:], ref), item
        torch.testing.assert_close(audio[item: item + 1, :, start * hop:], model.decode(ref, "700bps"),
                                   atol=1e-5, rtol=0)


def test_reset_state_restarts_only_the_chosen_items(model):
    state = init_state(model, "encoder", 2)
    _, state = encode_step(model, torch.randn(2, 1, 3 * model.hop_length), state)
    fresh = init_state(model, "encoder", 2)
    for mask in ([1], torch.tensor([False, True])):
        restarted = reset_state(state, mask)
        for a, b, f in zip(_flat(restarted), _flat(state), _flat(fresh)):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], f[1])


def _flat(tree):
    return [tree] if isinstance(tree, torch.Tensor) else [leaf for item in tree for leaf in _flat(item)]


def test_decode_only_streaming_of_given_tokens(model):
    # Tokens from elsewhere (a speech LM): decoding needs no encoder state.
    tokens = torch.randint(0, 15625, (1, 2, 12))
    with streaming(model, 1, "700bps") as s:
        audio = torch.cat([s.decode(tokens[..., i: i + 5]) for i in range(0, 12, 5)], dim=-1)
    torch.testing.assert_close(audio, model.decode(tokens, "700bps"), atol=1e-5, rtol=0)


def test_codec_streaming_resolves_aliases_and_stage_strings():
    codec = Codec(causal_model(seed=3))
    wav = torch.randn(1, 1, 9 * codec.hop_length) * 0.3
    for preset in ("700bps", "3x3"):
        with codec.streaming(1, preset) as s:
            tokens = s.encode(wav)
            assert torch.equal(tokens, codec.model.encode(wav, codec.resolve_preset(preset)))
    assert s.latency(2) == algorithmic_latency(codec.model, 2) == 2 * codec.hop_length / codec.sample_rate


def test_errors_name_the_problem(model):
    hop = model.hop_length
    with pytest.raises(ValueError, match=f"not a whole number of frames: streaming takes multiples of {hop}"):
        encode_step(model, torch.randn(1, 1, hop + 5), init_state(model, "encoder", 1))
    with pytest.raises(TypeError, match="no decoder state: create one with init_state"):
        decode_step(model, torch.zeros(1, 1, 2, dtype=torch.int64), None)
    with pytest.raises(ValueError, match="not a decoder state of this model: decoder.stem expects"):
        decode_step(model, torch.zeros(1, 1, 2, dtype=torch.int64), init_state(model, "encoder", 1))
    with pytest.raises(ValueError, match=r"a chunk must be \(B=2, 1, T\)"):
        encode_step(model, torch.randn(1, 1, hop), init_state(model, "encoder", 2))
    with pytest.raises(ValueError, match=r"tokens must be \(B=1, K, n\)"):
        decode_step(model, torch.zeros(1, 1, 0, dtype=torch.int64), init_state(model, "decoder", 1))
    with pytest.raises(ValueError, match="token out of range"):
        decode_step(model, torch.full((1, 1, 2), -1), init_state(model, "decoder", 1))
    session = StreamingSession(model, 2)
    with pytest.raises(TypeError, match="outside its `with` block"):
        session.encode(torch.randn(2, 1, hop))
    with session:
        pass
    with pytest.raises(TypeError, match="outside its `with` block"):
        session.decode(torch.zeros(2, 1, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"reset items \[5\] are out of range"):
        with session as s:
            s.reset(5)
    with pytest.raises(ValueError, match="unknown preset 'bogus'"):
        StreamingSession(model, 1, "bogus")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        init_state(model, "encoder", 0)


def test_a_non_causal_model_refuses_to_stream():
    offline = TAAE(TAAEConfig(patch_size=16, stem_width=32, widths=(32,), strides=(2,), depths=(1,), head_dim=16))
    with pytest.raises(ValueError, match=r"needs a causal TAAE .*\(window \[63, 64\]\)"):
        streaming(offline)
    with pytest.raises(ValueError, match="needs a causal TAAE"):
        init_state(offline, "decoder", 1)


@pytest.mark.gpu
@pytest.mark.parametrize("chunk", [1, 7])
def test_streaming_on_cuda_equals_offline_on_cuda(chunk):
    # fp32 without TF32 (cuDNN convs default to TF32, which would round at 1e-3); the offline stack then takes the
    # CUDA attention kernels, the stream its masked-SDPA path, so this checks the two agree on the device too.
    cuda = causal_model().cuda()
    wav = (torch.randn(2, 1, 16 * cuda.hop_length) * 0.3).cuda()
    conv_tf32, matmul = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        tokens = cuda.encode(wav, "700bps")
        streamed_tokens, streamed_audio = stream(cuda, wav, chunk, "700bps")
        assert torch.equal(streamed_tokens, tokens)
        torch.testing.assert_close(streamed_audio, cuda.decode(tokens, "700bps"), atol=1e-4, rtol=0)
    finally:
        torch.backends.cudnn.allow_tf32 = conv_tf32
        torch.set_float32_matmul_precision(matmul)


def test_the_streaming_token_benchmark_runs_and_counts_differing_digits():
    # Guards benchmarks/streaming_tokens.py, whose measured rate the README states (main had neither: it claimed
    # streaming tokens equal offline tokens exactly).
    import importlib.util

    spec = importlib.util.spec_from_file_location("streaming_tokens", ROOT / "benchmarks" / "streaming_tokens.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--minutes", "0.1", "--streams", "2", "--gains", "1", "1000000"])
    assert result["digits"] == 2 * 75 * 6 and result["max_delta"] < 1e-4  # 3 s per stream at 25 Hz, D = 6
    counts = result["counts"]["native"]
    assert 0 <= counts[1.0] <= counts[1e6] <= result["digits"]
    # Moved a million times further than float rounding moves it, some digit crosses a boundary.
    assert counts[1e6] > 0 or result["exact_latent"]

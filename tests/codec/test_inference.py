"""Inference options: the fast paths keep the numbers, the lossy ones stay close, and bad settings name the key."""

from __future__ import annotations

import pytest
import torch

from taae.codec import Codec
from taae.codec.inference import InferenceOptions
from taae.models.rvqgan import RVQGAN, RVQGANConfig
from taae.models.taae import TAAE, TAAEConfig
from taae.nn.conv import Snake1d
from taae.nn.rope import RotaryEmbedding
from taae.nn.transformer import SwiGLU, TransformerBlock
from tests.conftest import synth_speech

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_taae() -> TAAE:
    torch.manual_seed(0)
    return TAAE(TAAEConfig(stem_width=64, widths=(64, 64), strides=(1, 2), depths=(1, 1), head_dim=32,
                           layer_scale_init=1.0)).eval()


def reference_block(block: TransformerBlock, x: torch.Tensor) -> torch.Tensor:
    """The layer written out plainly (no in-place ops, no addcmul), as the model computed it before."""
    a = block.attn
    h = block.norm_attn(x)
    q, k, v = a.qkv(h).chunk(3, dim=-1)
    q, k, v = (t.unflatten(-1, (a.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
    cos, sin = a.rope.cos_sin(x.shape[1], device=x.device)
    q, k = (_rotate(n(t), cos, sin) for n, t in ((a.q_norm, q), (a.k_norm, k)))
    n = x.shape[1]
    i = torch.arange(n)
    band = ((i[None] - i[:, None]) >= -a.window[0]) & ((i[None] - i[:, None]) <= a.window[1])
    attn = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=band)
    x = x + a.out(attn.transpose(1, 2).flatten(2)) * block.scale_attn.gamma
    value, gate = block.ff.proj_in(block.norm_ff(x)).chunk(2, dim=-1)
    return x + block.ff.proj_out(value * torch.nn.functional.silu(gate)) * block.scale_ff.gamma


def _rotate(t, cos, sin):
    half = cos.shape[-1]
    x1, x2, rest = t[..., :half], t[..., half:2 * half], t[..., 2 * half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest), dim=-1)


def test_fused_layer_equals_the_plain_formula_and_keeps_its_gradients():
    block = TransformerBlock(64, head_dim=32, window=(3, 4), layer_scale_init=0.7)
    x = torch.randn(2, 21, 64, requires_grad=True)
    out, ref = block(x), reference_block(block, x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(out.square().sum(), [x, *block.parameters()])
    refs = torch.autograd.grad(ref.square().sum(), [x, *block.parameters()])
    for g, r in zip(grads, refs):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def test_in_place_snake_and_swiglu_match_the_formula():
    snake = Snake1d(5)
    snake.alpha.data.uniform_(0.3, 2.0)
    x = torch.randn(2, 5, 40, requires_grad=True)
    expected = x + (snake.alpha * x).sin().pow(2) / (snake.alpha + snake.eps)
    out = snake(x)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    # In-place ops on autograd intermediates: the gradients must still be the formula's (training uses Snake too).
    grads = torch.autograd.grad(out.square().sum(), [x, snake.alpha])
    refs = torch.autograd.grad(expected.square().sum(), [x, snake.alpha])
    for g, r in zip(grads, refs):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
    ff, h = SwiGLU(8, 2), torch.randn(3, 8)
    value, gate = ff.proj_in(h).chunk(2, dim=-1)
    torch.testing.assert_close(ff(h), ff.proj_out(value * torch.nn.functional.silu(gate)), rtol=0, atol=0)


def test_rope_tables_are_shared_and_kept_apart_from_inference_mode():
    a, b = RotaryEmbedding(32), RotaryEmbedding(32)
    assert a.cos_sin(50)[0] is b.cos_sin(50)[0]  # one table for every layer
    with torch.inference_mode():
        inference_table = a.cos_sin(50)[0]
    assert inference_table is not a.cos_sin(50)[0]
    q = torch.randn(1, 2, 50, 32, requires_grad=True)
    a(q).sum().backward()  # an inference-mode table here would raise


# compile=True is checked by benchmarks/cpu_inference.py (outputs against fp32) and the GPU suite: its CPU compile
# took minutes even for this model, too long for the unit suite.
@pytest.mark.parametrize("options", [InferenceOptions(threads=1), InferenceOptions(threads="auto")],
                         ids=["threads", "auto"])
def test_fast_paths_keep_tokens_and_audio(options):
    model, wav = tiny_taae(), synth_speech(1.0)
    plain = Codec(model)
    fast = Codec(tiny_taae(), inference=options)
    for preset in ("native", "700bps"):
        tokens = plain.encode(wav, 16000, preset)
        assert torch.equal(fast.encode(wav, 16000, preset), tokens)
        torch.testing.assert_close(fast.decode(tokens, preset), plain.decode(tokens, preset), rtol=1e-5, atol=1e-5)


def test_int8_stays_close_and_keeps_the_float_model_for_export(tmp_path):
    model, wav = tiny_taae(), synth_speech(1.0)
    plain, int8 = Codec(model), Codec(tiny_taae(), inference=InferenceOptions(precision="int8"))
    assert int8.model_hash == plain.model_hash  # the float weights are what the hash and exports see
    assert type(int8.model.encoder.stages[0][1].blocks[0].attn.qkv) is torch.nn.Linear
    tokens = plain.encode(wav, 16000, "700bps")
    agree = (int8.encode(wav, 16000, "700bps") == tokens).float().mean()
    assert agree > 0.8  # measured 0.92 on this random model (LayerScale 1): int8 quantises every Linear
    decoded, reference = int8.decode(tokens, "700bps"), plain.decode(tokens, "700bps")
    assert (decoded - reference).norm() / reference.norm() < 0.05  # measured 0.022
    int8.add_preset("9x3", "9x3")
    assert int8.encode(wav, 16000, "9x3").shape[1] == 2
    assert Codec.load(int8.export(tmp_path / "e")).model_hash == plain.model_hash


def test_rvqgan_keeps_its_numbers_with_cached_weight_norm():
    torch.manual_seed(0)
    model = RVQGAN(RVQGANConfig(encoder_dim=8, encoder_strides=(2, 4, 5, 8), latent_dim=32, decoder_dim=32,
                                decoder_strides=(8, 5, 4, 2), n_codebooks=4, codebook_size=64, codebook_dim=4))
    wav = synth_speech(0.3).unsqueeze(0)
    with torch.no_grad():
        tokens, audio = model.encode(wav), model.decode(model.encode(wav))
    codec = Codec(model, inference=InferenceOptions(threads=1))
    assert torch.equal(codec.encode(wav[0], 16000, normalize=False), tokens)
    torch.testing.assert_close(codec.decode(tokens)[0], audio[0, 0], rtol=1e-5, atol=1e-6)


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="precision must be one of fp32, int8, bf16"):
        InferenceOptions(precision="fp16")
    with pytest.raises(ValueError, match="threads must be 'auto', None or an int"):
        InferenceOptions(threads=0)
    with pytest.raises(ValueError, match="precision='int8' is a CPU mode"):
        InferenceOptions(precision="int8").check_device(torch.device("cuda"))


def test_cli_threads_and_precision():
    from taae.__main__ import build_parser

    args = build_parser().parse_args(["decode", "a.npz", "b.wav", "--checkpoint", "c", "--threads", "3",
                                      "--precision", "int8"])
    assert (args.threads, args.precision) == (3, "int8")
    assert build_parser().parse_args(["decode", "a.npz", "b.wav", "--checkpoint", "c"]).threads == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["decode", "a.npz", "b.wav", "--checkpoint", "c", "--threads", "0"])

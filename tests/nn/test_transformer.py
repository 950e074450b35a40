import pytest
import torch

from taae.nn.transformer import Transformer, TransformerBlock


def _block(dim=128, **kwargs):
    kwargs.setdefault("layer_scale_init", 1.0)  # at 1e-5 the block is nearly the identity and hides bugs
    kwargs.setdefault("attention_backend", "naive")
    return TransformerBlock(dim, **kwargs)


def test_parameter_count_matches_the_layer_formula():
    d, hd = 256, 128
    block = TransformerBlock(d, head_dim=hd)
    # attention 4d² (no bias) + SwiGLU 12d² + 9d (biases) + 2 LayerNorm scales + 2 LayerScales + QK-norm 4·Dh
    expected = 16 * d * d + 9 * d + 2 * d + 2 * d + 4 * hd
    assert sum(p.numel() for p in block.parameters()) == expected


def test_layer_norms_follow_the_paper_settings():
    block = TransformerBlock(128)
    assert block.norm_attn.eps == 1e-2 and block.norm_attn.bias is None
    assert block.attn.q_norm.eps == 1e-6 and block.attn.q_norm.bias is not None
    assert torch.all(block.scale_attn.gamma == 1e-5)


def test_block_is_local_to_its_window():
    torch.manual_seed(0)
    block = _block(window=(2, 3)).eval()
    x = torch.randn(1, 20, 128)
    y = block(x)
    far = x.clone()
    far[:, 15] += torch.randn(128)  # outside query 5's window [3, 8]
    assert torch.equal(block(far)[:, 5], y[:, 5])
    near = x.clone()
    near[:, 7] += torch.randn(128)  # a constant shift would vanish in the LayerNorm
    assert not torch.allclose(block(near)[:, 5], y[:, 5])


@pytest.mark.parametrize("backend", ["sdpa", "chunked"])
def test_block_backends_agree_with_naive(backend):
    torch.manual_seed(1)
    ref = _block(window=(63, 64))
    other = _block(window=(63, 64), attention_backend=backend)
    other.load_state_dict(ref.state_dict())
    x = torch.randn(2, 300, 128, requires_grad=True)
    y_ref = ref(x)
    y_ref.square().sum().backward()
    g_ref = x.grad.clone()
    x.grad = None
    y = other(x)
    y.square().sum().backward()
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad, g_ref, atol=1e-4, rtol=1e-4)


def test_checkpointing_gives_the_same_values_and_gradients():
    torch.manual_seed(2)
    plain = Transformer(128, depth=2, layer_scale_init=1.0)
    ckpt = Transformer(128, depth=2, checkpointing=True, layer_scale_init=1.0)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 128, 40)
    outs = []
    for model in (plain, ckpt):
        model.train()
        model.zero_grad()
        y = model(x)
        y.sum().backward()
        outs.append((y, [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b)


def test_silence_stays_finite_with_raised_epsilon():
    block = _block()
    x = torch.zeros(1, 10, 128, requires_grad=True)
    y = block(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()


def test_width_must_be_a_multiple_of_head_dim():
    with pytest.raises(ValueError, match="head_dim"):
        TransformerBlock(100, head_dim=128)

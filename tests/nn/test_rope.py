"""RotaryEmbedding: relative-position property, partial rotation, offsets, norms, dtypes, validation."""

from __future__ import annotations

import pytest
import torch

from taae.nn.rope import RotaryEmbedding, apply_rotary


def _rotate_at(rope, vec, position):
    """Rotate a single head vector (Dh,) as if it sat at ``position``."""
    x = vec.view(1, 1, 1, -1)
    return rope(x, offset=position)[0, 0, 0]


def test_default_is_partial_half():
    rope = RotaryEmbedding(128)
    assert rope.rotary_dim == 64 and rope.inv_freq.shape == (32,) and rope.inv_freq.dtype == torch.float64
    assert "inv_freq" not in rope.state_dict()
    torch.testing.assert_close(rope.inv_freq[:2], torch.tensor([1.0, 10000 ** (-2 / 64)], dtype=torch.float64))


@pytest.mark.parametrize("distance", [0, 1, 5, 37, 300])
def test_score_depends_only_on_relative_position(distance):
    rope = RotaryEmbedding(32)
    q, k = torch.randn(2, 32)
    scores = torch.stack(
        [_rotate_at(rope, q, p + distance) @ _rotate_at(rope, k, p) for p in (0, 1, 2, 10, 99, 500, 1234)]
    )
    torch.testing.assert_close(scores, scores[:1].expand_as(scores), atol=1e-5, rtol=1e-5)


def test_score_matrix_is_toeplitz_for_any_offset():
    # Same q and k at every position: the (i, j) score then depends on i - j alone, whatever the offset.
    rope = RotaryEmbedding(16, rotary_dim=16)
    q = torch.randn(16).expand(1, 1, 40, 16)
    k = torch.randn(16).expand(1, 1, 40, 16)
    reference = rope(q) @ rope(k).transpose(-1, -2)
    for offset in (1, 17, 1000):
        scores = rope(q, offset=offset) @ rope(k, offset=offset).transpose(-1, -2)  # (1, 1, N, N)
        torch.testing.assert_close(scores, reference, atol=1e-4, rtol=1e-5)
    for d in (-5, 0, 3):
        diagonal = torch.diagonal(reference[0, 0], offset=d)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), atol=1e-5, rtol=1e-5)


def test_position_zero_is_identity_and_rest_untouched():
    rope = RotaryEmbedding(32)
    x = torch.randn(2, 3, 20, 32)
    out = rope(x)
    torch.testing.assert_close(out[:, :, 0], x[:, :, 0])
    assert torch.equal(out[..., 16:], x[..., 16:])
    assert not torch.allclose(out[:, :, 1:, :16], x[:, :, 1:, :16])


def test_half_split_convention():
    # Rotary dim 4: pairs are (0, 2) and (1, 3), with frequencies 1 and base^(-1/2).
    rope = RotaryEmbedding(6, rotary_dim=4, base=100.0)
    x = torch.tensor([1.0, 0.0, 0.0, 0.0, 7.0, 8.0]).view(1, 1, 1, 6)
    out = rope(x, offset=3)[0, 0, 0]
    expected = torch.tensor([torch.cos(torch.tensor(3.0)), 0.0, torch.sin(torch.tensor(3.0)), 0.0, 7.0, 8.0])
    torch.testing.assert_close(out, expected)


def test_offset_equals_slice_of_longer_call():
    rope = RotaryEmbedding(32)
    x = torch.randn(2, 2, 50, 32)
    full = rope(x)
    for offset, n in ((0, 10), (7, 13), (30, 20)):
        torch.testing.assert_close(rope(x[:, :, offset : offset + n], offset=offset), full[:, :, offset : offset + n])


def test_norm_preserved():
    rope = RotaryEmbedding(64)
    x = torch.randn(2, 4, 100, 64)
    out = rope(x, offset=12345)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[..., :32].norm(dim=-1), x[..., :32].norm(dim=-1), atol=1e-5, rtol=1e-5)


def test_bf16_input_is_rotated_in_float32():
    rope = RotaryEmbedding(32)
    x = torch.randn(1, 2, 200, 32).bfloat16()
    out = rope(x, offset=1000)
    assert out.dtype == torch.bfloat16
    # Exactly the float32 rotation of the bf16 values, rounded once at the end.
    assert torch.equal(out, rope(x.float(), offset=1000).bfloat16())
    # A module cast to bf16 keeps float32 frequencies.
    assert torch.equal(rope.to(torch.bfloat16)(x, offset=1000), out)


def test_float64_stays_float64():
    rope = RotaryEmbedding(16)
    x = torch.randn(1, 1, 5, 16, dtype=torch.float64)
    out = rope(x, offset=3)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), rope(x.float(), offset=3), atol=1e-6, rtol=1e-6)


def test_apply_rotary_matches_module():
    rope = RotaryEmbedding(24, rotary_dim=8)
    x = torch.randn(2, 2, 9, 24)
    cos, sin = rope.cos_sin(9, offset=4)
    assert cos.shape == (9, 4)
    torch.testing.assert_close(apply_rotary(x, cos, sin), rope(x, offset=4))


def test_gradients_flow():
    rope = RotaryEmbedding(16)
    x = torch.randn(1, 2, 7, 16, requires_grad=True)
    rope(x, offset=2).pow(2).sum().backward()
    # A rotation is orthogonal, so d/dx |R x|^2 = 2x.
    torch.testing.assert_close(x.grad, 2 * x.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"head_dim": 32, "rotary_dim": 5}, "rotary_dim must be even"),
        ({"head_dim": 32, "rotary_dim": 64}, "rotary_dim must be even and in \\[2, head_dim=32\\]"),
        ({"head_dim": 0}, "head_dim must be an int >= 2"),
        ({"head_dim": 32, "base": 0.5}, "base must be > 1"),
    ],
)
def test_bad_constructor_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RotaryEmbedding(**kwargs)


def test_bad_forward_args():
    rope = RotaryEmbedding(32)
    with pytest.raises(ValueError, match=r"x must be \(B, H, N, Dh=32\), got \(1, 2, 3, 16\)"):
        rope(torch.randn(1, 2, 3, 16))
    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        rope(torch.randn(1, 2, 3, 32), offset=-1)


def test_rotate_at_per_item_positions_equals_offsets_exactly():
    rope = RotaryEmbedding(16)
    x = torch.randn(3, 2, 5, 16)
    starts = [0, 7, 123456]
    positions = torch.tensor(starts)[:, None] + torch.arange(5)  # (B, N): each item its own start
    rotated = rope.rotate_at(x, positions)
    for b, start in enumerate(starts):
        assert torch.equal(rotated[b], rope(x[b: b + 1], offset=start)[0])
    with pytest.raises(ValueError, match="positions must be int64"):
        rope.rotate_at(x, positions.float())

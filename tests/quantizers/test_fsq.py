"""FSQ: grid, exact int64 index math over all 17^6 codes, §3 dither mix, gradients, dtypes, vqp parity.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import pytest
import torch
import vector_quantize_pytorch as vqp  # the dev extra's: the cross-check's reference, never skipped

from taae.quantizers.fsq import FSQ, grid_digits, grid_values

# Shape legend: B batch, D latent dim, S frames.


def _on_grid(x: torch.Tensor, levels: int) -> torch.Tensor:
    lv = torch.tensor(levels)
    return x == grid_values(grid_digits(x, lv), lv, x.dtype)


def test_grid_is_symmetric_and_holds_ends_and_zero():
    for levels in (3, 5, 6, 17):
        grid = grid_values(torch.arange(levels), torch.tensor(levels))
        assert grid[0] == -1 and grid[-1] == 1
        assert torch.equal(grid, -grid.flip(0))
        assert (0 in grid.tolist()) == (levels % 2 == 1)
    assert FSQ().step == (0.125,) * 6


def test_rounding_is_half_up_and_clamped():
    lv = torch.tensor(5)  # step 0.5: ties at ±0.25 and ±0.75
    x = torch.tensor([-1.5, -0.75, -0.25, 0.25, 0.75, 1.5], dtype=torch.float64)
    assert grid_digits(x, lv).tolist() == [0, 1, 2, 3, 4, 4]


def test_exhaustive_index_round_trip_17_pow_6():
    fsq = FSQ()
    assert fsq.codebook_size == 17**6 == 24_137_569
    chunk = 1 << 21
    for start in range(0, fsq.codebook_size, chunk):
        indices = torch.arange(start, min(start + chunk, fsq.codebook_size)).view(1, -1)  # (1, S)
        codes = fsq.indices_to_codes(indices)  # (1, D, S)
        assert codes.dtype == torch.float32
        assert torch.equal(fsq.codes_to_indices(codes), indices)
    # The last index is all top digits; first dimension least significant.
    assert fsq.indices_to_codes(torch.tensor([[fsq.codebook_size - 1]])).flatten().tolist() == [1.0] * 6
    assert fsq.indices_to_codes(torch.tensor([[1]])).flatten().tolist() == [-0.875] + [-1.0] * 5


def test_mixed_levels_index_round_trip_and_codes():
    fsq = FSQ(levels=(2, 3, 6, 17))
    indices = torch.arange(fsq.codebook_size).view(2, -1)
    codes = fsq.indices_to_codes(indices)
    assert torch.equal(fsq.codes_to_indices(codes), indices)
    assert torch.equal(fsq.eval()(torch.atanh(codes.double().clamp(-0.999999, 0.999999))).float(), codes)


def test_eval_is_deterministic_hard_rounding():
    fsq = FSQ().eval()
    z = 2 * torch.randn(4, 6, 50)
    first, second = fsq(z), fsq(z)
    assert torch.equal(first, second)
    expected = torch.floor(8 * (torch.tanh(z).double() + 1) + 0.5) / 8 - 1  # Eq. 1 for L = 17
    assert torch.equal(first, expected.float())
    assert _on_grid(first, 17).all()


def _classify(out: torch.Tensor, b: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """Per item: 0 pass-through, 1 straight-through quantised, 2 noised."""
    passed = (out == b).flatten(1).all(1)
    ste = (out == quantized).flatten(1).all(1)
    return torch.where(passed, 0, torch.where(ste, 1, 2))


def test_dither_mix_frequencies_and_noise_width():
    fsq = FSQ().train()
    b = torch.rand(40_000, 6, 4) * 1.8 - 0.9
    out = fsq.quantize(b)
    quantized = fsq.eval().quantize(b)
    path = _classify(out, b, quantized)
    freq = torch.bincount(path, minlength=3).double() / len(path)
    assert torch.allclose(freq, torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64), atol=0.02), freq
    noise = (out - b)[path == 2]
    assert noise.abs().max() <= 0.125 / 2 and noise.abs().max() > 0.06  # U(-Δ/2, Δ/2), Δ = 0.125


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_dither_prob_extremes(p):
    b = torch.rand(64, 6, 8) * 2 - 1
    out = FSQ(dither_prob=p).train().quantize(b)
    if p == 1.0:  # both masks always on: every item passes through unquantised
        assert torch.equal(out, b)
    else:  # m2 always 0: every item noised
        assert (out != b).flatten(1).any(1).all() and (out - b).abs().max() <= 0.0625


def test_random_levels_grid_and_noise_follow_sampled_level():
    choices = (5, 9, 17)
    fsq = FSQ(random_levels=choices).train()
    b = torch.rand(6000, 6, 64) * 2 - 1
    out = fsq.quantize(b)
    quantized = {L: FSQ(levels=(L,) * 6).eval().quantize(b) for L in choices}
    deviation = (out - b).abs().flatten(1).amax(1)
    # Noised items: with 384 samples per item, the largest |noise| lands within 10% of Δ/2 of the sampled L.
    noised = ~(out == b).flatten(1).all(1) & ~torch.stack(
        [(out == q).flatten(1).all(1) for q in quantized.values()]
    ).any(0)
    half_steps = torch.tensor([1.0 / (L - 1) for L in choices])
    dev = deviation[noised]
    assert (dev <= half_steps[0]).all()
    sampled = ((dev[:, None] <= half_steps) & (dev[:, None] > 0.9 * half_steps)).int()
    assert (sampled.sum(1) == 1).all()  # each noised item fits exactly one level's noise width
    share = sampled.sum(0).double() / len(dev)
    assert torch.allclose(share, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03), share
    # Straight-through items equal the rounding to the level they drew: a third of the 25% for each level.
    passed = (out == b).flatten(1).all(1)
    for q in quantized.values():
        on_level = (out == q).flatten(1).all(1) & ~passed
        assert abs(on_level.double().mean() - 0.25 / 3) < 0.015
    # Evaluation ignores random_levels.
    assert torch.equal(fsq.eval().quantize(b), quantized[17])


def test_gradients_reach_input_on_every_path():
    fsq = FSQ().train()
    z = (torch.randn(400, 6, 5) * 1.5).requires_grad_()
    out = fsq(z)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    with torch.no_grad():
        b = torch.tanh(z)
        path = _classify(out, b, fsq.eval().quantize(b))
    assert set(path.tolist()) == {0, 1, 2}
    # Every path has slope 1 in b, so the gradient is exactly the tanh derivative times the upstream weight.
    expected = weight * (1 - torch.tanh(z.detach()) ** 2)
    torch.testing.assert_close(z.grad, expected, rtol=1e-5, atol=1e-7)
    assert (z.grad.flatten(1).abs().amax(1) > 0).all()


def test_eval_rounding_is_straight_through():
    z = torch.randn(2, 6, 7, requires_grad=True)
    codes = FSQ().eval()(z)
    codes.sum().backward()
    assert _on_grid(codes.detach(), 17).all()
    torch.testing.assert_close(z.grad, 1 - torch.tanh(z.detach()) ** 2)


def test_bf16_under_autocast_gives_float32_and_same_codes():
    fsq = FSQ().eval()
    z = torch.randn(3, 6, 40).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fsq(z)
        out_fp32_input = fsq(z.float())
    assert out.dtype == torch.float32 and out_fp32_input.dtype == torch.float32
    assert torch.equal(out, fsq(z.float()))
    assert torch.equal(out, out_fp32_input)
    assert fsq(z.double()).dtype == torch.float64


def test_state_dict_empty_and_token_spec():
    fsq = FSQ()
    assert fsq.state_dict() == {}
    spec = fsq.token_spec(25.0)
    assert spec.vocab_sizes == (17**6,) and spec.bitrate == 625 and round(spec.exact_bitrate, 1) == 613.1




def _away_from_ties(b: torch.Tensor, levels: int, margin: float = 1e-5) -> torch.Tensor:
    scaled = (levels - 1) * (b.double() + 1) / 2
    return (scaled - scaled.floor() - 0.5).abs() > margin


@pytest.mark.parametrize("levels", [17, 5, 6])
def test_codes_match_vector_quantize_pytorch(levels):
    ref = vqp.FSQ([levels] * 6, preserve_symmetry=True, channel_first=True, return_indices=False).eval()
    ours = FSQ(levels=(levels,) * 6).eval()
    z = 2 * torch.randn(8, 6, 2000)
    expected, _ = ref(z)
    got = ours(z)
    keep = _away_from_ties(torch.tanh(z), levels)
    assert keep.double().mean() > 0.99
    if (levels - 1) & (levels - 2) == 0:  # power-of-two step: grid values exact in float32 both ways
        assert torch.equal(got[keep], expected[keep])
    else:
        torch.testing.assert_close(got[keep], expected[keep], rtol=0, atol=1e-6)


def test_indices_match_vector_quantize_pytorch():
    levels = [5, 9, 17, 3]  # small product: vqp materialises its codebook and sums indices in float32
    ref = vqp.FSQ(levels, preserve_symmetry=True, channel_first=True).eval()
    ours = FSQ(levels=levels).eval()
    z = 2 * torch.randn(4, 4, 3000)
    codes, indices = ref(z)
    keep = torch.stack([_away_from_ties(torch.tanh(z[:, d]), L) for d, L in enumerate(levels)], 1).all(1)
    assert torch.equal(ours.codes_to_indices(codes)[keep], indices[keep].long())
    assert torch.equal(ours.indices_to_codes(indices.long()), ref.indices_to_codes(indices))


def test_validation_errors():
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels=(17, 1))
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels=())
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels=(4.5,))
    with pytest.raises(ValueError, match="dither_prob"):
        FSQ(dither_prob=1.5)
    with pytest.raises(ValueError, match="dither_prob"):
        FSQ(dither_prob=-0.1)
    with pytest.raises(ValueError, match="random_levels"):
        FSQ(random_levels=(5, 1))
    fsq = FSQ()
    with pytest.raises(ValueError, match=r"shape \(B, 6, S\)"):
        fsq(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"item 1, frame 2: 24137569"):
        fsq.indices_to_codes(torch.tensor([[0, 0, 0], [0, 0, 17**6]]))
    with pytest.raises(ValueError, match=r"item 0, frame 0: -1"):
        fsq.indices_to_codes(torch.tensor([[-1]]))
    with pytest.raises(TypeError, match="integer"):
        fsq.indices_to_codes(torch.zeros(1, 3))
    with pytest.raises(TypeError, match="float"):
        fsq.codes_to_indices(torch.zeros(1, 6, 3, dtype=torch.int64))

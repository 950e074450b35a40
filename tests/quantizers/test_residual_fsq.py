"""Post-hoc residual FSQ: exactness against the 17-level grid, presets, bitrates, clipping, ties and validation."""

from __future__ import annotations

import math

import pytest
import torch

from taae.quantizers.fsq import FSQ
from taae.quantizers.residual_fsq import PRESET_ALIASES, PRESETS, PostHocResidualFSQ
from taae.quantizers.token_spec import TokenSpec

# Shape legend: B batch, D latent dim, S frames, K stages.

EXACT_PRESETS = ["2x15625_700bps", "4x729_1000bps"]
ALL_PRESETS = [*PRESETS, *PRESET_ALIASES]


@pytest.mark.parametrize("name", EXACT_PRESETS)
def test_presets_reproduce_every_17_grid_value(name):
    rfsq = PostHocResidualFSQ.from_preset(name)
    grid = FSQ(levels=(17,)).indices_to_codes(torch.arange(17).view(1, -1))  # (1, 1, 17)
    codes = grid.expand(2, 6, 17).contiguous()
    assert torch.equal(rfsq.decode(rfsq.encode(codes)), codes)


@pytest.mark.parametrize("name", EXACT_PRESETS)
def test_presets_reproduce_a_million_random_17_level_codes(name):
    rfsq, fsq = PostHocResidualFSQ.from_preset(name), FSQ()
    indices = torch.randint(fsq.codebook_size, (4, 250_000))  # (B, S): 1 M frames of 6 dims
    codes = fsq.indices_to_codes(indices)
    assert torch.equal(rfsq.decode(rfsq.encode(codes)), codes)


@pytest.mark.parametrize("name", EXACT_PRESETS)
def test_exact_presets_equal_17_level_fsq_on_bounded_latents(name):
    # Greedy half-up residual rounding equals one half-up rounding on the fine grid, so even off-grid latents
    # land on the same codes as the native quantiser.
    rfsq, fsq = PostHocResidualFSQ.from_preset(name), FSQ().eval()
    z = 2 * torch.randn(4, 6, 5000)
    assert torch.equal(rfsq.decode(rfsq.encode(torch.tanh(z))), fsq(z))


@pytest.mark.parametrize("name", EXACT_PRESETS)
def test_tokens_are_canonical(name):
    # Greedy rounding alone sends 0.2 to (0, +0.25) and 0.25 to (0.5, -0.25): one decoded value, two tuples.
    rfsq, fsq = PostHocResidualFSQ.from_preset(name), FSQ().eval()
    z = 2 * torch.randn(4, 6, 5000)
    assert torch.equal(rfsq.encode(torch.tanh(z)), rfsq.encode(fsq(z)))
    edge = torch.full((1, 6, 1), 0.2)
    assert torch.equal(rfsq.encode(edge), rfsq.encode(torch.full((1, 6, 1), 0.25)))


def test_400bps_decodes_to_six_level_grid():
    rfsq = PostHocResidualFSQ.from_preset("400bps")
    decoded = rfsq.decode(rfsq.encode(torch.tanh(2 * torch.randn(4, 6, 5000))))
    expected = torch.tensor([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])
    assert torch.equal(decoded.unique(), expected)


@pytest.mark.parametrize(
    ("name", "bitrate", "exact"),
    [("1x46656_400bps", 400, 387.7), ("2x15625_700bps", 700, 696.6), ("4x729_1000bps", 1000, 951.0)],
)
def test_bitrates(name, bitrate, exact):
    rfsq = PostHocResidualFSQ.from_preset(name)
    assert rfsq.bitrate(25) == bitrate
    assert round(rfsq.exact_bitrate(25), 1) == exact
    assert rfsq.bits_per_frame * 25 == bitrate
    assert math.isclose(rfsq.exact_bits_per_frame * 25, rfsq.exact_bitrate(25))
    spec = rfsq.token_spec(25.0)
    assert isinstance(spec, TokenSpec) and spec.name == name and spec.bitrate == bitrate
    assert spec.vocab_sizes == rfsq.vocab_sizes and rfsq.num_stages == len(PRESETS[name])


def test_aliases_and_unknown_preset():
    for alias, name in PRESET_ALIASES.items():
        assert PostHocResidualFSQ.from_preset(alias).stages == PostHocResidualFSQ.from_preset(name).stages
    assert PostHocResidualFSQ.from_preset("700bps").vocab_sizes == (15625, 15625)
    with pytest.raises(ValueError, match=r"'800bps'.*1x46656_400bps.*1000bps"):
        PostHocResidualFSQ.from_preset("800bps")


def test_is_exact_for():
    assert PostHocResidualFSQ.from_preset("700bps").is_exact_for(17)
    assert PostHocResidualFSQ.from_preset("1000bps").is_exact_for(17)
    assert not PostHocResidualFSQ.from_preset("400bps").is_exact_for(17)
    assert PostHocResidualFSQ.from_preset("400bps").is_exact_for(6)
    assert not PostHocResidualFSQ.from_preset("700bps").is_exact_for(9)  # reaches the finer 17-grid values
    assert PostHocResidualFSQ([(9, 1.0), (3, 0.125)]).is_exact_for(17)
    assert PostHocResidualFSQ([(3, 1.0), (9, 0.5)]).is_exact_for(17)
    assert PostHocResidualFSQ([(5, 1.0), (3, 0.25)]).is_exact_for(9)
    # Coverage alone is not exactness: a generous second scale overshoots the 17-grid.
    assert not PostHocResidualFSQ([(5, 1.0), (5, 0.5)]).is_exact_for(17)


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_token_round_trip_is_identity(name):
    rfsq = PostHocResidualFSQ.from_preset(name)
    tokens = rfsq.encode(torch.tanh(2 * torch.randn(3, 6, 4000)))
    assert tokens.dtype == torch.int64 and tokens.shape == (3, rfsq.num_stages, 4000)
    assert ((tokens >= 0) & (tokens < torch.tensor(rfsq.vocab_sizes).view(1, -1, 1))).all()
    assert torch.equal(rfsq.encode(rfsq.decode(tokens)), tokens)
    assert torch.equal(rfsq.decode(tokens.to(torch.int32)), rfsq.decode(tokens))


def test_out_of_range_tokens_raise_naming_stage_item_frame_value():
    rfsq = PostHocResidualFSQ.from_preset("700bps")
    tokens = torch.zeros(2, 2, 5, dtype=torch.int64)
    tokens[1, 1, 3] = 15625
    with pytest.raises(ValueError, match=r"stage 1, item 1, frame 3 holds 15625"):
        rfsq.decode(tokens)
    tokens[1, 1, 3], tokens[0, 0, 4] = 0, -2
    with pytest.raises(ValueError, match=r"stage 0, item 0, frame 4 holds -2"):
        rfsq.decode(tokens)
    with pytest.raises(ValueError, match="shape"):
        rfsq.decode(torch.zeros(1, 3, 5, dtype=torch.int64))
    with pytest.raises(TypeError, match="integer"):
        rfsq.decode(torch.zeros(1, 2, 5))


def test_decode_clips_out_of_range_sums():
    rfsq = PostHocResidualFSQ.from_preset("1000bps")
    # All 3^4 digit tuples, the same tuple on every dimension: token = digit · (1 + 3 + ... + 3^5).
    digits = torch.cartesian_prod(*[torch.arange(3)] * 4)  # (81, K)
    tokens = (digits * sum(3**d for d in range(6))).T.unsqueeze(0)  # (1, K, 81)
    sums = ((digits.double() - 1) * torch.tensor([1.0, 0.5, 0.25, 0.125], dtype=torch.float64)).sum(1)
    assert sums.abs().max() == 1.875 and math.isclose((sums.abs() > 1).double().mean(), 26 / 81)
    decoded = rfsq.decode(tokens)  # (1, D, 81)
    assert torch.equal(decoded, sums.clamp(-1, 1).float().expand(1, 6, 81))
    assert decoded.abs().max() == 1.0


def test_ties_round_half_up_deterministically():
    rfsq = PostHocResidualFSQ.from_preset("700bps")
    # 0.25 is a tie against the 5-level step 0.5: half up gives 0.5 then -0.25 (digits 3, 0); -0.25 gives 0, -0.25.
    values = torch.tensor([0.25, -0.25, 0.75, -0.75], dtype=torch.float32)
    codes = values.view(1, 1, -1).expand(1, 6, -1)
    tokens = rfsq.encode(codes)
    per_dim = torch.tensor([[3, 0], [2, 0], [4, 0], [1, 0]]).T * sum(5**d for d in range(6))
    assert torch.equal(tokens[0], per_dim)
    assert torch.equal(rfsq.encode(codes), tokens) and torch.equal(rfsq.decode(tokens), codes)


def test_coverage_check_rejects_lossy_stage_sets():
    with pytest.raises(ValueError, match=r"stage 1 \(scale 0.1\) cannot cover .*stage 0.*short by 0.15"):
        PostHocResidualFSQ([(5, 1.0), (5, 0.1)])
    with pytest.raises(ValueError, match=r"stage 0 \(scale 0.5\).*short by 0.5"):
        PostHocResidualFSQ([(5, 0.5)])
    lossy = PostHocResidualFSQ([(5, 1.0), (5, 0.1)], allow_lossy=True)
    codes = torch.tanh(torch.randn(2, 6, 100))
    assert lossy.encode(codes).dtype == torch.int64
    assert not lossy.is_exact_for(17)
    # Per-dimension levels: the coarsest dimension sets the residual to cover.
    with pytest.raises(ValueError, match="stage 1"):
        PostHocResidualFSQ([([5, 5, 5, 5, 5, 3], 1.0), (5, 0.25)])
    assert PostHocResidualFSQ([([5, 5, 5, 5, 5, 3], 1.0), (5, 0.5)]).vocab_sizes == (5**5 * 3, 5**6)


def test_stage_validation_errors():
    with pytest.raises(ValueError, match="at least one"):
        PostHocResidualFSQ([])
    with pytest.raises(ValueError, match="levels of stage 1"):
        PostHocResidualFSQ([(5, 1.0), (1, 0.25)])
    with pytest.raises(ValueError, match="one value per dimension"):
        PostHocResidualFSQ([([5, 5], 1.0)])
    with pytest.raises(ValueError, match="scale of stage 0"):
        PostHocResidualFSQ([(5, 0.0)], allow_lossy=True)
    rfsq = PostHocResidualFSQ.from_preset("700bps")
    with pytest.raises(ValueError, match=r"item 0, dim 2, frame 1 holds 1.5"):
        bad = torch.zeros(1, 6, 3)
        bad[0, 2, 1] = 1.5
        rfsq.encode(bad)
    with pytest.raises(ValueError, match=r"shape \(B, 6, S\)"):
        rfsq.encode(torch.zeros(1, 5, 3))

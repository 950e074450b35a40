"""stable-codec's token IDs (``token_rule="stable-codec"``) against its own ResidualFSQBottleneck / FSQ outputs.

The probe latents hold exact zeros, saturated values and values within three float32 ulps of every preset's
rounding boundaries, where half-up vs half-even rounding, float64 vs float32 steps, or a different order of the
float operations would change a token; the last 1400 frames are random.
"""

from __future__ import annotations

import pytest
import torch

from taae.quantizers.fsq import FSQ
from taae.quantizers.residual_fsq import PRESETS as STAGES
from taae.quantizers.residual_fsq import PostHocResidualFSQ
from taae.quantizers.stable_codec_tokens import stable_codec_tokens
from tests.interop.common import PRESETS, outputs


def probes():
    out, _ = outputs("stable_codec_outputs")
    return out, out["probe/latents"]


@pytest.mark.parametrize("preset", PRESETS)
def test_post_hoc_tokens_equal_stable_codec_on_every_probe(preset):
    out, latents = probes()
    assert torch.equal(stable_codec_tokens(latents, STAGES[preset]), out[f"probe/{preset}/tokens"])


def test_native_tokens_equal_stable_codec_fixed_fsq():
    out, latents = probes()
    assert torch.equal(stable_codec_tokens(latents, None)[:, 0], out["probe/native_tokens"])


@pytest.mark.parametrize("preset", PRESETS)
def test_stable_codec_tokens_decode_through_taae_to_its_latent(preset):
    out, _ = outputs("stable_codec_outputs")
    decoded = PostHocResidualFSQ.from_preset(preset).decode(out[f"probe/{preset}/tokens"])
    # Bit-exact for 700/1000 bps; 400 bps differs by float32 rounding of its 0.4 step (one ulp).
    torch.testing.assert_close(decoded, out[f"probe/{preset}/latent"], rtol=0, atol=1e-7)


@pytest.mark.parametrize("preset", ["2x15625_700bps", "4x729_1000bps"])
def test_canonical_tokens_differ_but_decode_to_the_same_latent(preset):
    out, latents = probes()
    quantizer = PostHocResidualFSQ.from_preset(preset)
    ours = quantizer.encode(torch.tanh(latents.double()))
    theirs = out[f"probe/{preset}/tokens"]
    assert (ours != theirs).any(dim=1).float().mean() > 0.3  # measured: 47% (700 bps), 89% (1000 bps) of frames
    assert torch.equal(quantizer.decode(ours), out[f"probe/{preset}/latent"])


def test_native_codes_follow_the_official_rounding():
    out, latents = probes()
    fsq = FSQ([17] * 6).eval()
    codes = fsq.indices_to_codes(stable_codec_tokens(latents, None)[:, 0])
    assert torch.equal(codes, out["probe/native_codes"])


def test_shape_is_checked():
    with pytest.raises(ValueError, match="latent must have shape"):
        stable_codec_tokens(torch.zeros(6, 3), None)

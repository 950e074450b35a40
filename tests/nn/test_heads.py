import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from taae.models.taae import TAAE, TAAEConfig
from taae.nn.heads import ISTFTHead, OverlapAddHead


def as_wav(patches):  # (B, P, N) → (B, 1, N·P)
    return rearrange(patches, "b p n -> b 1 (n p)")


def test_overlap_add_rebuilds_a_known_signal_exactly():
    """Frames cut from a signal at hop P, half a patch early, overlap-add back to it, ends included."""
    p, n = 8, 6
    head = OverlapAddHead(4, p)
    wav = torch.randn(2, 1, n * p)
    padded = F.pad(wav, (p // 2, p // 2))  # frame k starts at k·P − P/2
    frames = rearrange(padded.unfold(-1, 2 * p, p), "b 1 n w -> b w n")  # (B, 2P, N)
    assert frames.shape == (2, 2 * p, n)
    torch.testing.assert_close(as_wav(head.overlap_add(frames)), wav, rtol=0, atol=1e-6)
    # inside, the window alone sums to one: the envelope divides nothing there
    torch.testing.assert_close(head.window[:p] + head.window[p:], torch.ones(p), rtol=0, atol=1e-6)


def test_overlap_add_cross_fades_neighbouring_frames():
    """Two frames of different constants: the seam between their patches is a Hann ramp, not a step."""
    p = 8
    head = OverlapAddHead(4, p)
    frames = torch.stack([torch.zeros(2 * p), torch.ones(2 * p)], dim=-1)[None]  # (1, 2P, 2)
    wav = as_wav(head.overlap_add(frames))[0, 0]
    assert wav[: p // 2].abs().max() == 0 and wav[-p // 2:].eq(1).all()
    ramp = wav[p // 2: p + p // 2]  # the overlap of frame 0's second half and frame 1's first half
    torch.testing.assert_close(ramp, head.window[:p])  # the rising half of the Hann window
    assert (ramp.diff() > 0).all()


def test_istft_head_inverts_its_own_stft():
    head = ISTFTHead(4, patch_size=320, frames_per_patch=2)
    wav = torch.randn(2, 1, 320 * 5)
    params = head.analyze(wav)
    assert params.shape == (2, 2 * 2 * 321, 5)
    torch.testing.assert_close(as_wav(head.synthesize(params)), wav, rtol=0, atol=1e-5)


@pytest.mark.parametrize("head", [OverlapAddHead(16, 8), ISTFTHead(16, 8, frames_per_patch=2)])
def test_gradients_reach_every_output_channel_of_a_head(head):
    """Every row of the projection (every frame sample; every log-magnitude and phase bin) gets a gradient."""
    torch.manual_seed(0)
    x = torch.randn(2, 16, 5, requires_grad=True)
    out = head(x)
    assert out.shape == (2, 8, 5)
    (out * torch.randn_like(out)).sum().backward()
    assert head.proj.weight.grad.abs().sum(dim=(1, 2)).gt(0).all()
    assert head.proj.bias.grad.ne(0).all()
    assert x.grad.ne(0).any()


@pytest.mark.parametrize("name, kind", [("overlap_add", OverlapAddHead), ("istft", ISTFTHead)])
def test_gradients_reach_every_parameter_of_a_taae_with_the_head(name, kind):
    torch.manual_seed(0)
    model = TAAE(TAAEConfig(stem_width=128, widths=(128, 128), depths=(1, 1), layer_scale_init=1.0,
                            attention_backend="sdpa", head=name))
    assert isinstance(model.decoder.head, kind)
    wav = torch.randn(2, 1, 1280) * 0.1
    out = model(wav)
    assert out.audio.shape == wav.shape
    F.l1_loss(out.audio, wav).backward()
    missing = [k for k, v in model.named_parameters() if v.grad is None or not v.grad.ne(0).any()]
    assert not missing, missing


def test_head_config_is_checked():
    with pytest.raises(ValueError, match="head must be one of"):
        TAAEConfig(head="vocoder")
    with pytest.raises(ValueError, match="causal TAAE streams patch by patch"):
        TAAEConfig(head="istft", causal=True, window=(63, 0))
    with pytest.raises(ValueError, match="not a multiple of frames_per_patch"):
        ISTFTHead(4, 320, frames_per_patch=3)
    with pytest.raises(ValueError, match="even patch_size"):
        OverlapAddHead(4, 7)


@pytest.mark.parametrize("frames_per_patch", [1, 2])
def test_istft_real_equals_torch_istft(frames_per_patch):
    """The exporters' real-arithmetic inverse is ``torch.istft`` within float32 rounding: fails on irfft's bin
    weights (DC or Nyquist weighted 2), on a dropped window or envelope, or on a wrong centre cut."""
    torch.manual_seed(0)
    head = ISTFTHead(8, 320, frames_per_patch=frames_per_patch)
    n = 7
    magnitude = torch.rand(2, head.bins, n * frames_per_patch) * 2
    phase = (torch.rand(2, head.bins, n * frames_per_patch) - 0.5) * 2 * math.pi
    expected = torch.istft(torch.polar(magnitude, phase), head.n_fft, head.hop, window=head.window, center=True,
                           length=n * 320)
    torch.testing.assert_close(head.istft_real(magnitude, phase, n * 320), expected, atol=1e-6, rtol=0)

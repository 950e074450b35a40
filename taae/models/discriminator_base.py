"""The contract every taae discriminator keeps, and the pieces TAAE's and DAC's discriminators share.

Shape legend: B batch, T samples.

Every discriminator's ``forward(wav (B, 1, T))`` returns ``list[list[Tensor]]``: one list per sub-discriminator,
holding its feature maps with the logit map last. Discriminators therefore compose by list concatenation
(``taae.models.discriminators.CombinedDiscriminator``), and ``taae.losses.adversarial`` reads any combination.
``_Discriminator`` is that front: input check, optional DAC input normalisation (§7), then one
feature list per sub-discriminator. TAAE's (§6) and DAC's (§7) discriminators
build on it.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

# helper functions


def normalize_audio(wav: Tensor, peak: float = 0.8, eps: float = 1e-9) -> Tensor:
    """DAC's discriminator input preprocessing (§7): remove DC, then peak-normalise each item."""
    wav = wav - wav.mean(dim=-1, keepdim=True)
    return peak * wav / (wav.abs().amax(dim=-1, keepdim=True) + eps)


def _wn_conv2d(*args, **kwargs) -> nn.Conv2d:
    return weight_norm(nn.Conv2d(*args, **kwargs))


def _check_wav(wav: Tensor, min_length: int = 1) -> None:
    if wav.dim() != 3 or wav.shape[1] != 1:
        raise ValueError(f"expected a mono waveform (B, 1, T), got {tuple(wav.shape)}")
    if wav.shape[-1] < min_length:
        raise ValueError(f"waveform of {wav.shape[-1]} samples is shorter than the {min_length} this one needs")


class _Discriminator(nn.Module):
    """Shared front: optional DAC input normalisation, then one feature list per sub-discriminator."""

    def __init__(self, normalize_input: bool, input_peak: float):
        super().__init__()
        self.normalize_input, self.input_peak = normalize_input, input_peak
        self.discriminators = nn.ModuleList()

    def forward(self, wav: Tensor) -> list[list[Tensor]]:
        _check_wav(wav)
        if self.normalize_input:
            wav = normalize_audio(wav, self.input_peak)
        return [d(wav) for d in self.discriminators]

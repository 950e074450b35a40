"""A pre-emphasised waveform L1: the sample loss with its gradient tilted towards high frequencies.

Shape legend: B batch, T samples.

The sample L1 of the recipe (``taae.losses.spectral.WaveformL1Loss``) spends almost all of its gradient on the
strong low harmonics: speech energy sits below ~500 Hz. Filtering both signals with the first-order pre-emphasis
y[t] = x[t] − a·x[t−1] (a = 0.95 lifts 4 kHz by ~26 dB against DC, the classic speech-coding tilt) before the L1
keeps the term phase-sensitive, so it still fixes the waveform's sign, while the formant and fricative bands
weigh more. The coefficient is ours; ``benchmarks/learning_curves.py`` measures the term against the recipe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PreEmphasisL1Loss", "pre_emphasis"]


def pre_emphasis(wav: Tensor, coefficient: float) -> Tensor:
    """(B, 1, T) → (B, 1, T): y[t] = x[t] − a·x[t−1], with x[−1] = 0."""
    return wav - coefficient * F.pad(wav, (1, 0))[..., :-1]


class PreEmphasisL1Loss(nn.Module):
    """Mean absolute error between pre-emphasised signals.

    Args:
        coefficient: a in [0, 1); 0 is the plain sample L1.
    """

    def __init__(self, coefficient: float = 0.95):
        super().__init__()
        if not 0.0 <= coefficient < 1.0:
            raise ValueError(f"PreEmphasisL1Loss coefficient must be in [0, 1), got {coefficient}")
        self.coefficient = coefficient

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"PreEmphasisL1Loss needs equal shapes, got {tuple(pred.shape)} and "
                             f"{tuple(target.shape)}")
        with torch.autocast(device_type=pred.device.type, enabled=False):
            a = self.coefficient
            return (pre_emphasis(pred.float(), a) - pre_emphasis(target.float(), a)).abs().mean()

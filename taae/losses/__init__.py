"""Training losses: spectral reconstruction, GAN objectives with feature matching, and the WavLM feature loss."""

from taae.losses.adversarial import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from taae.losses.perceptual import WavLMFeatureLoss
from taae.losses.spectral import (
    CompressedComplexSTFTLoss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    WaveformL1Loss,
    mel_spectrogram,
    slaney_mel_filterbank,
)
from taae.losses.waveform import PreEmphasisL1Loss

__all__ = [
    "CompressedComplexSTFTLoss",
    "MultiResolutionSTFTLoss",
    "MultiScaleMelLoss",
    "PreEmphasisL1Loss",
    "WaveformL1Loss",
    "WavLMFeatureLoss",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "mel_spectrogram",
    "slaney_mel_filterbank",
]

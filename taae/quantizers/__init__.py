"""Quantizers: FSQ with dither (TAAE), the post-hoc residual FSQ presets, and residual VQ (RVQGAN)."""

from taae.quantizers.fsq import FSQ
from taae.quantizers.presets import ResidualPreset, ResidualPresets
from taae.quantizers.residual_fsq import PRESET_ALIASES, PRESETS, PostHocResidualFSQ
from taae.quantizers.rvq import ResidualVectorQuantizer

__all__ = ["FSQ", "PRESETS", "PRESET_ALIASES", "PostHocResidualFSQ", "ResidualPreset", "ResidualPresets",
           "ResidualVectorQuantizer"]

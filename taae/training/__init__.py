"""Training: ``CodecModule`` (one LightningModule for every codec), EMA, callbacks and the CLI."""

from taae.training.module import CodecModule

__all__ = ["CodecModule"]

"""Training data: folder/manifest data module with exact resume, and the demo speech set."""

from taae.data.datamodule import AudioDataModule, AudioDataset, AudioFile, EpochSampler, find_audio_files, scan

__all__ = ["AudioDataModule", "AudioDataset", "AudioFile", "EpochSampler", "find_audio_files", "scan"]

"""Training callbacks: validation audio samples and mel-spectrogram images, written to disk and the logger; torch's
CPU thread count for a run."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from taae.io.audio import save_audio
from taae.losses.spectral import mel_spectrogram


class TorchThreads(L.Callback):
    """Set torch's intra-op CPU threads when a run starts.

    ``"auto"`` leaves one core to each data-loader worker: max(1, usable cores − ``data.num_workers``). Measured on
    a 2-core machine (the quickstart's), one thread beside the one loader worker trained the tiny TAAE at 0.087–0.091
    s per batch in three runs, two threads at 0.10–0.33 s: every parallel op waits for its slowest thread, so a
    thread that shares a core with the loader (or loses it to another process) stalls them all.

    Args:
        num_threads: a count ≥ 1, or ``"auto"``.
    """

    def __init__(self, num_threads: int | str = "auto"):
        super().__init__()
        if num_threads != "auto" and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                      or num_threads < 1):
            raise ValueError(f"TorchThreads num_threads must be an int >= 1 or 'auto', got {num_threads!r}")
        self.num_threads = num_threads

    def resolve(self, data_workers: int) -> int:
        if self.num_threads != "auto":
            return int(self.num_threads)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores - max(0, int(data_workers)))

    def setup(self, trainer, pl_module, stage):
        workers = getattr(trainer.datamodule, "num_workers", 0) if trainer.datamodule is not None else 0
        torch.set_num_threads(self.resolve(workers or 0))


class AudioSamples(L.Callback):
    """Keep the first validation batch's clips and write them as wav under ``<default_root_dir>/samples/``
    (``reference/`` once, ``step_<N>/`` at every validation) and, with a TensorBoard logger, as audio and log-mel
    images.

    Args:
        n_fft, hop_length, n_mels: the spectrogram drawn for the images.
    """

    def __init__(self, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 80):
        super().__init__()
        self.n_fft, self.hop_length, self.n_mels = n_fft, hop_length, n_mels
        self._batch: dict[str, Tensor] | None = None
        self._references_logged = False

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and isinstance(outputs, dict) and "reconstruction" in outputs:
            self._batch = outputs

    def on_validation_epoch_end(self, trainer, pl_module):
        if self._batch is None or trainer.sanity_checking or not trainer.is_global_zero:
            self._batch = None
            return
        sample_rate = pl_module.generator.sample_rate
        step = int(pl_module.generator_steps)
        root = Path(trainer.default_root_dir) / "samples"
        kinds = ["reconstruction"] if self._references_logged else ["reference", "reconstruction"]
        experiment = _tensorboard(trainer)
        for kind in kinds:
            folder = root / ("reference" if kind == "reference" else f"step_{step:07d}")
            for i, wav in enumerate(self._batch[kind]):
                if not torch.isfinite(wav).all():  # a diverging run: SkipGuard reports it, not a sample clip's error
                    warnings.warn(f"{kind} clip_{i} at generator step {step} is not finite; not saved", stacklevel=2)
                    continue
                save_audio(folder / f"clip_{i}.wav", wav.clamp(-1, 1), sample_rate)
                if experiment is not None:
                    tag = f"{kind}/clip_{i}"
                    experiment.add_audio(tag, wav.clamp(-1, 1).flatten(), step, sample_rate=sample_rate)
                    experiment.add_image(f"{kind}_mel/clip_{i}", self._mel_image(wav, sample_rate), step)
        self._references_logged = True
        self._batch = None

    def _mel_image(self, wav: Tensor, sample_rate: int) -> Tensor:
        """(1, n_mels, frames) in [0, 1], low frequencies at the bottom, 80 dB range."""
        mel = mel_spectrogram(wav.reshape(1, 1, -1), sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                              n_mels=self.n_mels, log=False)[0]
        db = 20 * torch.log10(mel.clamp(min=1e-5))
        db = (db - db.max() + 80).clamp(min=0) / 80
        return db.flip(0).unsqueeze(0)


def _tensorboard(trainer):
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_audio"):
            return experiment
    return None

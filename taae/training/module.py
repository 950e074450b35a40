"""``CodecModule``: one LightningModule that trains any codec model (TAAE or RVQGAN) adversarially.

Shape legend: B batch, T samples.

Each batch, in this order (DAC's order, §7; the official TAAE code alternates G and D batches,
which halves what each one sees, §9 item 12):
  1. generator forward (train mode: FSQ dither / quantizer dropout);
  2. discriminator step on the real batch and the detached reconstruction, clipped to ``grad_clip_d``;
  3. generator step on reconstruction + adversarial + feature-matching (+ perceptual) terms, against the
     just-updated discriminator, clipped to ``grad_clip_g``; then the EMA update.
A non-finite reconstruction, discriminator loss/gradient or generator loss/gradient skips the whole batch: the run
is left as if the batch had never been drawn, bit for bit (weights, optimiser states, the EMA, the balancer's
averages, the global RNG; a discriminator that had already stepped on the batch is put back, which costs one copy of
its weights and optimiser state per batch). Only Lightning's ``global_step`` still counts D's undone step.
``nan_skips`` counts the skips, and training goes on; ``max_consecutive_skips`` in a row stop it with an error
naming the last finite step (``taae.training.guard``). Under DDP each check is all-reduced, so a skip on one rank
is a skip on every rank (``taae.training.distributed``).

Lightning counts every optimiser step in ``trainer.global_step``; G and D both step on each batch (a gradient-free
D step while the discriminator is off), so ``max_steps: 2000`` means 1000 batches (``train/steps`` logs generator
steps).

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.nn.utils import clip_grad_norm_

from taae.models.interface import check_codec_model
from taae.training import guard
from taae.training.checkpoint import add_run_state, load_weights, restore_rng
from taae.training.distributed import finite_on_all_ranks
from taae.training.ema import EMA
from taae.training.guard import DEFAULT_MAX_CONSECUTIVE_SKIPS, SkipGuard
from taae.training.objective import Objective, StepLoss

DEFAULT_ADAMW = {"lr": 1e-4, "betas": (0.8, 0.99)}
"""The optimiser of a config that names none: DAC's AdamW (descript-audio-codec ``conf/base.yml``). The optimisers
are experiment choices, so every shipped recipe sets ``optimizer_g`` and ``optimizer_d`` in its YAML
(``tests/test_config_choices.py``); this default only keeps a hand-built module usable."""


class CodecModule(L.LightningModule):
    """Train a codec model with spectral, adversarial, feature-matching and optional perceptual losses.

    Args:
        generator: a :class:`taae.models.interface.CodecModel` (TAAE, RVQGAN); anything else is a ``TypeError``.
        discriminator: a module returning ``list[list[Tensor]]`` (features, logits last), or None for a
            purely spectral run.
        mel_loss, stft_loss, waveform_loss, perceptual_loss: loss modules ``loss(pred, target)``; a term with
            weight 0 or no module is not computed (the mel and STFT distances are still logged in validation).
            ``waveform_loss`` is the phase-sensitive term: the sample L1 by default, or e.g. a
            ``CompressedComplexSTFTLoss`` that spreads it over frequency.
        loss_weights: weight per logged term: ``mel``, ``stft``, ``waveform``, ``adv_gen``, ``adv_feat``,
            ``perceptual`` and the model's own terms such as ``vq/commitment``. Unknown names are refused.
        balancer: how the terms computed from the reconstruction are combined: None (the plain weighted sum
            Σ w·L) or a ``taae.training.balancer.GradientBalancer``, with which each weight is that term's share
            of the gradient at the generator output, whatever the term's scale (EnCodec). The model's own terms
            (``vq/…``) never pass through it. Both log ``train/share/<term>`` and ``train/weight/<term>``.
        adversarial_loss: ``hinge`` (TAAE code default) or ``lsgan`` (DAC).
        feature_matching_normalized: TAAE's normalised L1 (True) or DAC's plain sum (False).
        waveform_decay: the waveform L1 weight is multiplied by this on every generator step (§6: "decaying").
        adversarial_warmup_steps: generator steps before the adversarial and feature-matching terms switch
            on; the discriminator trains from the start (official "adv" warm-up mode).
        discriminator_start_steps: generator steps before the discriminator is even run: a pure
            reconstruction phase that costs no discriminator compute (useful on CPUs; 0 = from the start).
        optimizer_g, optimizer_d: optimiser factories; None = ``DEFAULT_ADAMW`` (DAC's AdamW). Recipes set them.
        scheduler_g, scheduler_d: LR scheduler factories stepped once per batch, or None.
        grad_clip_g, grad_clip_d: max gradient norms (DAC: 1000 and 10); None disables clipping.
        ema_decay: EMA of the generator (β, e.g. 0.9999), or None. Validation and export use it when on.
        init_weights_from: a checkpoint whose generator (and discriminator, when shapes match) weights
            initialise this run; optimiser state and step counters start fresh (fine-tuning). It is read with
            ``torch.load(weights_only=True)``.
        trust_init_weights: unpickle ``init_weights_from`` fully if the safe load refuses it (runs any code
            the file holds: only for checkpoints you trust).
        num_audio_samples: validation clips kept for audio/spectrogram logging.
        max_consecutive_skips: non-finite batches in a row that stop training with an error (0 = never).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        mel_loss: nn.Module | None = None,
        stft_loss: nn.Module | None = None,
        waveform_loss: nn.Module | None = None,
        perceptual_loss: nn.Module | None = None,
        loss_weights: dict[str, float] | None = None,
        balancer: nn.Module | None = None,
        adversarial_loss: str = "hinge",
        feature_matching_normalized: bool = True,
        waveform_decay: float = 1.0,
        adversarial_warmup_steps: int = 0,
        discriminator_start_steps: int = 0,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        scheduler_g: LRSchedulerCallable | None = None,
        scheduler_d: LRSchedulerCallable | None = None,
        grad_clip_g: float | None = 1000.0,
        grad_clip_d: float | None = 10.0,
        ema_decay: float | None = None,
        init_weights_from: str | None = None,
        trust_init_weights: bool = False,
        num_audio_samples: int = 4,
        max_consecutive_skips: int = DEFAULT_MAX_CONSECUTIVE_SKIPS,
    ):
        super().__init__()
        check_codec_model(generator, "model.generator")
        self.save_hyperparameters(ignore=["generator", "discriminator", "mel_loss", "stft_loss", "waveform_loss",
                                          "perceptual_loss", "balancer"])
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.objective = Objective(generator, discriminator is not None, mel_loss, stft_loss, waveform_loss,
                                   perceptual_loss, loss_weights, balancer, adversarial_loss,
                                   feature_matching_normalized, waveform_decay)
        # The objective's modules are children of this module, under the names checkpoints have always used.
        self.mel_loss, self.stft_loss = self.objective.mel_loss, self.objective.stft_loss
        self.waveform_loss, self.perceptual_loss = self.objective.waveform_loss, self.objective.perceptual_loss
        self.combiner = self.objective.combiner
        for key, value in (("adversarial_warmup_steps", adversarial_warmup_steps),
                           ("discriminator_start_steps", discriminator_start_steps),
                           ("num_audio_samples", num_audio_samples)):
            if value < 0:
                raise ValueError(f"model.{key} must be >= 0, got {value}")
        self.discriminator_start_steps = discriminator_start_steps
        self.adversarial_warmup_steps = adversarial_warmup_steps
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.scheduler_g, self.scheduler_d = scheduler_g, scheduler_d
        self.grad_clip_g, self.grad_clip_d = grad_clip_g, grad_clip_d
        self.ema = EMA(generator, ema_decay) if ema_decay is not None else None
        self.num_audio_samples = num_audio_samples
        # Buffers, so that a resumed run continues the same schedules and counts (they live in the checkpoint).
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("nan_skips", torch.zeros((), dtype=torch.long))
        self.skip_guard = SkipGuard(max_consecutive_skips)
        self._pending_rng: dict[str, Any] | None = None
        if init_weights_from:
            load_weights(init_weights_from, self.generator, self.discriminator, trust_init_weights, self.print)
            if self.ema is not None:
                self.ema.model.load_state_dict(self.generator.state_dict())

    def setup(self, stage: str) -> None:
        precision = str(self.trainer.precision) if self._trainer is not None else ""
        if precision.startswith("16"):
            raise ValueError(f"trainer.precision={precision!r} is not supported: use 'bf16-mixed' or '32-true'")
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        hop = self.generator.hop_length
        for key in ("segment_length", "val_segment_length"):
            value = getattr(datamodule, key, None)
            if value is not None and value % hop:
                raise ValueError(
                    f"data.{key}={value} is not a multiple of the model's hop length {hop}; "
                    f"use e.g. {max(hop, value // hop * hop)}"
                )
        rate = getattr(datamodule, "sample_rate", None)
        if rate is not None and rate != self.generator.sample_rate:
            raise ValueError(
                f"data.sample_rate={rate} differs from the model's sample_rate {self.generator.sample_rate}"
            )

    def configure_optimizers(self):
        def adamw(params):
            return torch.optim.AdamW(params, **DEFAULT_ADAMW)

        opt_g = (self.optimizer_g or adamw)(self.generator.parameters())
        # Without a discriminator, D's optimiser holds one unused scalar so that both step counts stay aligned.
        d_params = self.discriminator.parameters() if self.discriminator else [nn.Parameter(torch.zeros(()))]
        opt_d = (self.optimizer_d or adamw)(d_params)
        schedulers = [s(o) for s, o in ((self.scheduler_g, opt_g), (self.scheduler_d, opt_d)) if s is not None]
        return [opt_g, opt_d], [{"scheduler": s, "interval": "step"} for s in schedulers]

    # -- training ------------------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> None:
        self._restore_rng_once()
        # A skipped batch must leave the run as if it had never been drawn (dither, dropout): RNG included.
        rng = guard.rng_state()
        wav = self._audio(batch)  # (B, 1, T)
        opt_g, opt_d = self.optimizers()
        out = self.generator(wav)
        if not finite_on_all_ranks(out.audio):  # every check is agreed by all ranks (DDP)
            return self._skip("reconstruction", rng)
        logs_d: dict[str, Tensor] = {}
        steps = int(self.generator_steps)
        discriminator_on = self.discriminator is not None and steps >= self.discriminator_start_steps
        adversarial_on = discriminator_on and steps >= self.adversarial_warmup_steps

        saved = None
        if discriminator_on:
            # D steps before G is checked; a G skip must undo it, so D's weights and optimiser state are kept.
            saved = guard.snapshot(self.discriminator, opt_d)
            loss_d = self._optimizer_step(opt_d, self.discriminator, self.grad_clip_d, lambda: (
                self.objective.discriminator_loss(self.discriminator, wav, out.audio.detach())))
            if not loss_d.stepped:
                return self._skip("discriminator", rng)
            logs_d = {"train/disc": loss_d.value, "train/grad_norm_d": loss_d.grad_norm}
        else:
            # No gradients: AdamW leaves every parameter and its state alone, but Lightning still counts the step,
            # so `max_steps` and `global_step` mean 2 × batches whether or not the discriminator is running.
            opt_d.step()

        loss_g = self._optimizer_step(opt_g, self.generator, self.grad_clip_g, lambda: (
            self.objective.generator_loss(wav, out, self.discriminator, adversarial_on, steps)))
        if not loss_g.stepped:
            if saved is not None:  # the batch is skipped whole: D's step on it is undone
                guard.restore(self.discriminator, opt_d, saved)
            return self._skip("generator", rng)
        if loss_g.combined.norms is not None:  # the balancer learns only from finite steps
            self.objective.combiner.commit(loss_g.combined)

        self.generator_steps += 1
        self.skip_guard.finite(int(self.generator_steps))
        if self.ema is not None:
            self.ema.update(self.generator)
        for scheduler in self._schedulers():
            scheduler.step()
        logs = {**self.objective.step_logs(loss_g, self.discriminator is not None), **logs_d,
                "train/loss_g": loss_g.value, "train/grad_norm_g": loss_g.grad_norm,
                "train/lr_g": torch.tensor(opt_g.param_groups[0]["lr"]),
                "train/lr_d": torch.tensor(opt_d.param_groups[0]["lr"]),
                "train/steps": self.generator_steps.float(), "train/nan_skips": self.nan_skips.float()}
        self._log_metrics(logs, wav.shape[0], prog_bar=("train/mel",))

    def _optimizer_step(self, optimizer, model: nn.Module, max_norm: float | None,
                        loss_fn: Callable[[], StepLoss]) -> StepLoss:
        """One manual-optimisation step, the same for D and G (Lightning's GAN example).

        ``loss_fn`` runs with only ``optimizer``'s parameters trainable; its surrogate is backpropagated, the
        gradient of ``model`` clipped to ``max_norm`` (None: not clipped), and the optimiser steps only if the loss,
        the norm and the combined gradient are finite on every rank. Returns the loss with its norm and outcome.
        """
        self.toggle_optimizer(optimizer)
        loss = loss_fn()
        self.manual_backward(loss.surrogate)
        loss.grad_norm = clip_grad_norm_(list(model.parameters()), max_norm if max_norm is not None else float("inf"))
        loss.stepped = finite_on_all_ranks(*loss.must_be_finite, loss.grad_norm)
        if loss.stepped:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.untoggle_optimizer(optimizer)
        return loss

    def _skip(self, where: str, rng: dict[str, Any]) -> None:
        guard.set_rng_state(rng)
        self.nan_skips += 1
        for opt in self.optimizers():
            opt.zero_grad(set_to_none=True)
        self.log("train/nan_skips", self.nan_skips.float())
        self.print(f"non-finite {where} after {int(self.generator_steps)} generator steps: step skipped "
                   f"({int(self.nan_skips)} so far)")
        self.skip_guard.skipped(where, self.global_step, guard.checkpoint_paths(self.trainer))

    def _schedulers(self) -> list:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    # -- validation ----------------------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int) -> dict[str, Tensor] | None:
        wav = self._audio(batch)
        generator = self.ema.model if self.ema is not None else self.generator
        recon = generator(wav).audio.float()
        flipped = generator(-wav).audio.float()  # the sign test (Objective.validation_metrics)
        metrics = self.objective.validation_metrics(wav, recon, flipped)
        self._log_metrics(metrics, wav.shape[0], prog_bar=("val/mel", "val/si_sdr"), sync_dist=True)
        if batch_idx == 0 and self.num_audio_samples:
            n = self.num_audio_samples
            return {"reference": wav[:n].detach().cpu(), "reconstruction": recon[:n].detach().cpu()}
        return None

    # -- shared by training and validation ------------------------------------------------------------------------
    @staticmethod
    def _audio(batch) -> Tensor:
        wav = batch["audio"] if isinstance(batch, dict) else batch[0] if isinstance(batch, (list, tuple)) else batch
        if wav.dim() == 2:
            wav = wav.unsqueeze(1)
        return wav

    def _log_metrics(self, metrics: dict[str, Tensor], batch_size: int, prog_bar: tuple[str, ...],
                     sync_dist: bool = False) -> None:
        """Log ``metrics``; the ``prog_bar`` keys also on the progress bar."""
        for key in prog_bar:
            self.log(key, metrics.pop(key), prog_bar=True, batch_size=batch_size, sync_dist=sync_dist)
        self.log_dict(metrics, batch_size=batch_size, sync_dist=sync_dist)

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        add_run_state(checkpoint, self.generator)  # the generator's spec and the RNG (taae.training.checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get("rng_state")
        steps = checkpoint.get("state_dict", {}).get("generator_steps")
        if steps is not None and int(steps) > 0:  # a resumed run's last finite step is where it left off
            self.skip_guard.finite(int(steps))

    def _restore_rng_once(self) -> None:
        # Restored at the first batch, after the sanity check and anything else that draws random numbers.
        if self._pending_rng is not None:
            restore_rng(self._pending_rng)
            self._pending_rng = None

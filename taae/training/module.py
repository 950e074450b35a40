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

import math
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.nn.utils import clip_grad_norm_

from taae import __version__
from taae.eval.metrics import si_sdr
from taae.io.checkpoints import load_checkpoint, make_checkpoint_safe
from taae.io.export import load_strict
from taae.io.registry import model_spec
from taae.losses import (
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    WaveformL1Loss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from taae.models.interface import check_codec_model
from taae.training.balancer import Combined, GradientBalancer, WeightedSum, output_gradients
from taae.training.distributed import finite_on_all_ranks
from taae.training.ema import EMA
from taae.training.guard import DEFAULT_MAX_CONSECUTIVE_SKIPS, SkipGuard, checkpoint_paths

DEFAULT_ADAMW = {"lr": 1e-4, "betas": (0.8, 0.99)}
"""The optimiser of a config that names none: DAC's AdamW (descript-audio-codec ``conf/base.yml``). The optimisers
are experiment choices, so every shipped recipe sets ``optimizer_g`` and ``optimizer_d`` in its YAML
(``tests/test_config_choices.py``); this default only keeps a hand-built module usable."""
DEFAULT_LOSS_WEIGHTS = {"mel": 15.0, "adv_gen": 1.0, "adv_feat": 2.0}
"""DAC's λ for the shared terms (§7); model-specific terms (vq/…) come from the config."""


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
        self.mel_loss = mel_loss if mel_loss is not None else MultiScaleMelLoss(sample_rate=generator.sample_rate)
        self.stft_loss = stft_loss if stft_loss is not None else MultiResolutionSTFTLoss()
        self.waveform_loss = waveform_loss if waveform_loss is not None else WaveformL1Loss()
        self.perceptual_loss = perceptual_loss
        self.loss_weights = dict(DEFAULT_LOSS_WEIGHTS if loss_weights is None else loss_weights)
        self._check_config(adversarial_loss, waveform_decay, adversarial_warmup_steps, discriminator_start_steps,
                           num_audio_samples)
        self.combiner = balancer if balancer is not None else WeightedSum()
        if isinstance(self.combiner, GradientBalancer):
            self.combiner.set_terms(self._output_term_names)
        self.discriminator_start_steps = discriminator_start_steps
        self.adversarial_loss = adversarial_loss
        self.feature_matching_normalized = feature_matching_normalized
        self.waveform_decay = waveform_decay
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
            self.load_weights(init_weights_from, trust=trust_init_weights)

    # -- configuration -------------------------------------------------------------------------------------------
    _SHARED_TERMS = ("mel", "stft", "waveform", "adv_gen", "adv_feat", "perceptual")

    def _check_config(self, adversarial_loss, waveform_decay, warmup, discriminator_start, num_audio_samples) -> None:
        if adversarial_loss not in ("hinge", "lsgan"):
            raise ValueError(f"model.adversarial_loss must be 'hinge' or 'lsgan', got {adversarial_loss!r}")
        if not 0.0 < waveform_decay <= 1.0:
            raise ValueError(f"model.waveform_decay must be in (0, 1], got {waveform_decay}")
        for key, value in (("adversarial_warmup_steps", warmup), ("discriminator_start_steps", discriminator_start),
                           ("num_audio_samples", num_audio_samples)):
            if value < 0:
                raise ValueError(f"model.{key} must be >= 0, got {value}")
        for name, weight in self.loss_weights.items():
            if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                raise ValueError(f"model.loss_weights.{name} must be a finite number >= 0, got {weight!r}")
        known = [*self._SHARED_TERMS, *getattr(self.generator, "loss_terms", ())]
        unknown = [name for name in self.loss_weights if name not in known]
        if unknown:
            raise ValueError(f"model.loss_weights has unknown terms {unknown}; {type(self.generator).__name__} "
                             f"training produces {known}")
        if self.discriminator is None and any(self.loss_weights.get(k, 0) for k in ("adv_gen", "adv_feat")):
            raise ValueError("model.loss_weights has adversarial terms but model.discriminator is null")
        if self.perceptual_loss is None and self.loss_weights.get("perceptual", 0):
            raise ValueError("model.loss_weights.perceptual > 0 needs model.perceptual_loss")

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
        rng = _rng_state()
        wav = self._audio(batch)  # (B, 1, T)
        opt_g, opt_d = self.optimizers()
        out = self.generator(wav)
        if not finite_on_all_ranks(out.audio):  # every check is agreed by all ranks (DDP)
            return self._skip("reconstruction", rng)
        logs: dict[str, Tensor] = {}
        steps = int(self.generator_steps)
        discriminator_on = self.discriminator is not None and steps >= self.discriminator_start_steps
        adversarial_on = discriminator_on and steps >= self.adversarial_warmup_steps

        discriminator_saved = None
        if discriminator_on:
            # D steps before G is checked; a G skip must undo it, so D's weights and optimiser state are kept.
            discriminator_saved = self._save_discriminator(opt_d)
            self.toggle_optimizer(opt_d)
            loss_d = discriminator_loss(self.discriminator(wav), self.discriminator(out.audio.detach()),
                                        kind=self.adversarial_loss)
            self.manual_backward(loss_d)
            norm_d = self._clip(self.discriminator.parameters(), self.grad_clip_d)
            ok = finite_on_all_ranks(loss_d, norm_d)
            if ok:
                opt_d.step()
            opt_d.zero_grad(set_to_none=True)
            self.untoggle_optimizer(opt_d)
            if not ok:
                return self._skip("discriminator", rng)
            logs.update({"train/disc": loss_d.detach(), "train/grad_norm_d": norm_d})
        else:
            # No gradients: AdamW leaves every parameter and its state alone, but Lightning still counts the step,
            # so `max_steps` and `global_step` mean 2 × batches whether or not the discriminator is running.
            opt_d.step()

        self.toggle_optimizer(opt_g)
        loss_g, terms, combined = self._generator_backward(wav, out, adversarial_on)
        norm_g = self._clip(self.generator.parameters(), self.grad_clip_g)
        ok = finite_on_all_ranks(loss_g, norm_g, combined.gradient,
                                 *([combined.norms] if combined.norms is not None else []))
        if ok:
            opt_g.step()
            if combined.norms is not None:  # the balancer learns only from finite steps
                self.combiner.commit(combined)
        opt_g.zero_grad(set_to_none=True)
        self.untoggle_optimizer(opt_g)
        if not ok:
            if discriminator_saved is not None:  # the batch is skipped whole: D's step on it is undone
                self._restore_discriminator(opt_d, discriminator_saved)
            return self._skip("generator", rng)

        self.generator_steps += 1
        self.skip_guard.finite(int(self.generator_steps))
        if self.ema is not None:
            self.ema.update(self.generator)
        for scheduler in self._schedulers():
            scheduler.step()
        logs.update({f"train/{name}": value.detach() for name, value in terms.items() if name != "mel"})
        logs.update({f"train/share/{k}": torch.tensor(v) for k, v in combined.shares.items()})
        logs.update({f"train/weight/{k}": torch.tensor(v) for k, v in combined.weights.items()})
        # Every key from the first step on (NaN while a term is off): a key set that grows mid-run makes
        # Lightning's CSVLogger rewrite its header, which corrupts metrics.csv.
        for key in self._train_keys:
            logs.setdefault(key, torch.tensor(float("nan")))
        logs.update({"train/loss_g": loss_g.detach(), "train/grad_norm_g": norm_g,
                     "train/lr_g": torch.tensor(opt_g.param_groups[0]["lr"]),
                     "train/lr_d": torch.tensor(opt_d.param_groups[0]["lr"]),
                     "train/steps": self.generator_steps.float(), "train/nan_skips": self.nan_skips.float()})
        self.log_dict(logs, batch_size=wav.shape[0])
        self.log("train/mel", terms["mel"].detach(), prog_bar=True, batch_size=wav.shape[0])

    def _generator_backward(self, wav: Tensor, out, adversarial_on: bool):
        """Backpropagate the generator's loss; returns (effective loss, every term's value, the combination).

        The terms computed from the reconstruction are differentiated at the output (``output_gradients``) and
        combined there by ``self.combiner``; the generator backpropagates that one gradient, plus the model's own
        terms (weighted plainly). The effective loss Σ c_k·L_k + Σ w·L_own is what the step minimises.
        """
        y = out.audio.detach().float().requires_grad_(True)  # (B, 1, T), a leaf: gradients stop here
        terms = self._generator_terms(wav, y, adversarial_on)
        weighted = {name: value for name, value in terms.items() if self._weight(name)}
        weights = {name: self._weight(name) for name in weighted}
        if weighted:
            combined = self.combiner(output_gradients(weighted, y), weights)
        else:  # e.g. adversarial-only weights during the warm-up: nothing pushes the output this step
            combined = Combined(torch.zeros_like(y), {}, {})
        own = {name: value for name, value in out.losses.items() if self._weight(name)}
        loss_own = sum((self._weight(name) * value for name, value in own.items()), torch.zeros((), device=y.device))
        surrogate = (out.audio.float() * combined.gradient).sum() + loss_own
        self.manual_backward(surrogate)
        effective = sum(combined.weights[k] * v.detach() for k, v in weighted.items()) + loss_own.detach()
        return effective, {**terms, **own}, combined

    @property
    def _output_term_names(self) -> list[str]:
        """Weighted terms computed from the reconstruction (the ones the combiner sees)."""
        return [name for name in self._SHARED_TERMS if self.loss_weights.get(name, 0)]

    @property
    def _train_keys(self) -> list[str]:
        keys = [f"train/{name}" for name, weight in self.loss_weights.items() if weight and name != "mel"]
        if self.discriminator is not None:
            keys += ["train/disc", "train/grad_norm_d", "train/adv_gen", "train/adv_feat"]
        for name in self._output_term_names:
            keys += [f"train/share/{name}", f"train/weight/{name}"]
        return keys

    def _generator_terms(self, wav: Tensor, y: Tensor, adversarial_on: bool) -> dict[str, Tensor]:
        """The weighted terms computed from the reconstruction ``y`` (B, 1, T); weight-0 terms are not computed."""
        if self._weight("mel"):
            terms = {"mel": self.mel_loss(y, wav)}
        else:
            with torch.no_grad():  # the progress-bar metric, logged but not trained on
                terms = {"mel": self.mel_loss(y, wav)}
        if self._weight("stft"):
            terms["stft"] = self.stft_loss(y, wav)
        if self._weight("waveform"):
            terms["waveform"] = self.waveform_loss(y, wav)
        if self.perceptual_loss is not None and self._weight("perceptual"):
            terms["perceptual"] = self.perceptual_loss(y, wav)
        if adversarial_on and (self._weight("adv_gen") or self._weight("adv_feat")):
            fake = self.discriminator(y)
            with torch.no_grad():
                real = self.discriminator(wav)
            if self._weight("adv_gen"):
                terms["adv_gen"] = generator_adversarial_loss(fake, kind=self.adversarial_loss)
            if self._weight("adv_feat"):
                terms["adv_feat"] = feature_matching_loss(real, fake, normalize=self.feature_matching_normalized)
        return terms

    def _weight(self, name: str) -> float:
        weight = self.loss_weights.get(name, 0.0)
        if name == "waveform":
            weight *= self.waveform_decay ** int(self.generator_steps)
        return weight

    def _skip(self, where: str, rng: dict[str, Any]) -> None:
        _set_rng_state(rng)
        self.nan_skips += 1
        for opt in self.optimizers():
            opt.zero_grad(set_to_none=True)
        self.log("train/nan_skips", self.nan_skips.float())
        self.print(f"non-finite {where} after {int(self.generator_steps)} generator steps: step skipped "
                   f"({int(self.nan_skips)} so far)")
        self.skip_guard.skipped(where, self.global_step, checkpoint_paths(self.trainer))

    def _save_discriminator(self, opt_d) -> dict[str, Any]:
        optimizer = getattr(opt_d, "optimizer", opt_d)  # Lightning wraps it
        return {"weights": _clone(self.discriminator.state_dict()), "optimizer": _clone(optimizer.state_dict())}

    def _restore_discriminator(self, opt_d, saved: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(saved["weights"])
        getattr(opt_d, "optimizer", opt_d).load_state_dict(saved["optimizer"])

    @staticmethod
    def _clip(params, max_norm: float | None) -> Tensor:
        return clip_grad_norm_(list(params), max_norm if max_norm is not None else float("inf"))

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
        # A phase-blind model (one trained on magnitude losses alone) codes x and −x alike: its outputs correlate
        # at ≈ +1. One that follows the waveform gives ≈ −1. Cheap to see, and the first thing to check.
        flipped = generator(-wav).audio.float()
        metrics = {
            "val/mel": self.mel_loss(recon, wav),
            "val/stft": self.stft_loss(recon, wav),
            "val/waveform": (recon - wav).abs().mean(),
            "val/si_sdr": si_sdr(recon, wav).mean().float(),
            "val/sign_corr": sign_correlation(recon, flipped).mean(),
        }
        self.log("val/mel", metrics.pop("val/mel"), prog_bar=True, batch_size=wav.shape[0], sync_dist=True)
        self.log("val/si_sdr", metrics.pop("val/si_sdr"), prog_bar=True, batch_size=wav.shape[0], sync_dist=True)
        self.log_dict(metrics, batch_size=wav.shape[0], sync_dist=True)
        if batch_idx == 0 and self.num_audio_samples:
            n = self.num_audio_samples
            return {"reference": wav[:n].detach().cpu(), "reconstruction": recon[:n].detach().cpu()}
        return None

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The generator's own description, so `Codec.load` rebuilds it without the YAML or Lightning's hparams.
        spec = model_spec(self.generator)
        if spec is None:
            raise TypeError(f"{type(self.generator).__name__} has no dataclass `config`: it cannot be rebuilt "
                            "from a checkpoint")
        checkpoint["taae"] = {"generator": spec, "version": __version__}
        # Global RNG drives the FSQ dither and quantizer dropout; without it a resumed run diverges at once.
        checkpoint["rng_state"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()
        # Everything must load with torch.load(weights_only=True): nothing in a checkpoint may need unpickling.
        unsafe = make_checkpoint_safe(checkpoint)
        if unsafe:
            warnings.warn(f"this checkpoint will need full unpickling (a trust flag) to load: {'; '.join(unsafe[:5])}"
                          f"{' …' if len(unsafe) > 5 else ''}", stacklevel=2)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get("rng_state")
        steps = checkpoint.get("state_dict", {}).get("generator_steps")
        if steps is not None and int(steps) > 0:  # a resumed run's last finite step is where it left off
            self.skip_guard.finite(int(steps))

    def _restore_rng_once(self) -> None:
        # Restored at the first batch, after the sanity check and anything else that draws random numbers.
        if self._pending_rng is not None:
            torch.set_rng_state(self._pending_rng["torch"])
            if "cuda" in self._pending_rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._pending_rng["cuda"])
            self._pending_rng = None

    def load_weights(self, path: str, trust: bool = False) -> None:
        """Initialise the generator (strictly) and the discriminator (tensors whose shapes match) from a checkpoint,
        read with ``weights_only=True`` unless ``trust``."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"model.init_weights_from: no such checkpoint: {path}")
        state = load_checkpoint(path, trust=trust, trust_hint="set model.init_args.trust_init_weights: true",
                                trust_source="model.init_args.trust_init_weights")
        if not isinstance(state, dict):
            raise ValueError(f"model.init_weights_from={path!r} is not a checkpoint (it holds a "
                             f"{type(state).__name__})")
        state = state.get("state_dict", state)
        generator = {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}
        if not generator:
            raise ValueError(f"model.init_weights_from={path!r} holds no generator weights")
        load_strict(self.generator, generator, f"model.init_weights_from={path}")
        if self.discriminator is not None:
            own = self.discriminator.state_dict()
            found = {k.removeprefix("discriminator."): v for k, v in state.items() if k.startswith("discriminator.")}
            matching = {k: v for k, v in found.items() if k in own and own[k].shape == v.shape}
            self.discriminator.load_state_dict(matching, strict=False)
            if len(matching) < len(own):
                self.print(f"discriminator: {len(matching)} of {len(own)} tensors initialised from {path}")
        if self.ema is not None:
            self.ema.model.load_state_dict(self.generator.state_dict())

    @staticmethod
    def _audio(batch) -> Tensor:
        wav = batch["audio"] if isinstance(batch, dict) else batch[0] if isinstance(batch, (list, tuple)) else batch
        if wav.dim() == 2:
            wav = wav.unsqueeze(1)
        return wav


def _clone(state):
    """A copy of a (nested) state dict whose tensors no longer alias the live ones."""
    if isinstance(state, Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _clone(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_clone(v) for v in state)
    return state


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def sign_correlation(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation over time of each item of ``a`` and ``b`` (B, 1, T) → (B,); 0 for a silent item."""
    a = a.flatten(1) - a.flatten(1).mean(dim=1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)

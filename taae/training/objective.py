"""What ``CodecModule`` minimises: the loss terms of a batch, their weights and how they are combined.

Shape legend: B batch, T samples; ``y`` is the generator output (B, 1, T).

The generator's terms computed from the reconstruction (mel, STFT, waveform, perceptual, adversarial, feature
matching) are differentiated at the output and combined there by a combiner (``taae.training.balancer``: the plain
weighted sum, or EnCodec's gradient balancer); the model's own terms (``vq/…``) are added plainly. A term of weight 0
is never computed. The waveform weight decays per generator step (§6: "decaying"); the adversarial terms switch on
when ``CodecModule`` says so (its warm-up). The discriminator's loss is the hinge or LSGAN objective (§7).

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from taae.eval.metrics import si_sdr
from taae.losses import (
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    WaveformL1Loss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from taae.training.balancer import Combined, GradientBalancer, WeightedSum, output_gradients

DEFAULT_LOSS_WEIGHTS = {"mel": 15.0, "adv_gen": 1.0, "adv_feat": 2.0}
"""DAC's λ for the shared terms (§7); model-specific terms (vq/…) come from the config."""
SHARED_TERMS = ("mel", "stft", "waveform", "adv_gen", "adv_feat", "perceptual")
"""The terms every model's training can weight; a model adds its own (``loss_terms``, e.g. ``vq/commitment``)."""


@dataclass
class StepLoss:
    """One optimiser's loss on a batch, and what its step made of it."""

    surrogate: Tensor
    """What the optimiser's backward runs on (for the generator: Σ (y · G) + Σ w·L_own, see ``generator_loss``)."""
    value: Tensor
    """The loss the step minimises, detached: logged (``train/loss_g``, ``train/disc``) and checked finite."""
    terms: dict[str, Tensor] = field(default_factory=dict)
    """Every term's value (weighted or merely logged, such as ``mel`` at weight 0)."""
    combined: Combined | None = None
    """The combiner's output gradient and effective weights (generator only)."""
    grad_norm: Tensor | None = None
    """The gradient norm before clipping, once the step has run (``train/grad_norm_g``, ``train/grad_norm_d``)."""
    stepped: bool = False
    """Whether the optimiser stepped (everything was finite on every rank)."""

    @property
    def must_be_finite(self) -> tuple[Tensor, ...]:
        """What the all-rank finite check reads before the optimiser may step."""
        checks = [self.value]
        if self.combined is not None:
            checks.append(self.combined.gradient)
            if self.combined.norms is not None:
                checks.append(self.combined.norms)
        return tuple(checks)


class Objective:
    """The loss terms, their weights and their combination; see ``CodecModule`` for each argument.

    Not an ``nn.Module``: ``CodecModule`` registers the loss modules and the combiner as its own children, under the
    names its checkpoints have always used (``combiner._norm_sum``), so they move with it between devices.

    Args:
        generator: the codec model (its ``sample_rate`` for the default mel loss, its ``loss_terms``).
        has_discriminator: whether adversarial terms can be weighted at all.
    """

    def __init__(self, generator: nn.Module, has_discriminator: bool, mel_loss: nn.Module | None = None,
                 stft_loss: nn.Module | None = None, waveform_loss: nn.Module | None = None,
                 perceptual_loss: nn.Module | None = None, loss_weights: dict[str, float] | None = None,
                 balancer: nn.Module | None = None, adversarial_loss: str = "hinge",
                 feature_matching_normalized: bool = True, waveform_decay: float = 1.0):
        self.mel_loss = mel_loss if mel_loss is not None else MultiScaleMelLoss(sample_rate=generator.sample_rate)
        self.stft_loss = stft_loss if stft_loss is not None else MultiResolutionSTFTLoss()
        self.waveform_loss = waveform_loss if waveform_loss is not None else WaveformL1Loss()
        self.perceptual_loss = perceptual_loss
        self.loss_weights = dict(DEFAULT_LOSS_WEIGHTS if loss_weights is None else loss_weights)
        if adversarial_loss not in ("hinge", "lsgan"):
            raise ValueError(f"model.adversarial_loss must be 'hinge' or 'lsgan', got {adversarial_loss!r}")
        if not 0.0 < waveform_decay <= 1.0:
            raise ValueError(f"model.waveform_decay must be in (0, 1], got {waveform_decay}")
        self.adversarial_loss = adversarial_loss
        self.feature_matching_normalized = feature_matching_normalized
        self.waveform_decay = waveform_decay
        self._check_weights(generator, has_discriminator)
        self.combiner = balancer if balancer is not None else WeightedSum()
        if isinstance(self.combiner, GradientBalancer):
            self.combiner.set_terms(self.output_terms)

    def _check_weights(self, generator: nn.Module, has_discriminator: bool) -> None:
        for name, weight in self.loss_weights.items():
            if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                raise ValueError(f"model.loss_weights.{name} must be a finite number >= 0, got {weight!r}")
        known = [*SHARED_TERMS, *getattr(generator, "loss_terms", ())]
        unknown = [name for name in self.loss_weights if name not in known]
        if unknown:
            raise ValueError(f"model.loss_weights has unknown terms {unknown}; {type(generator).__name__} "
                             f"training produces {known}")
        if not has_discriminator and any(self.loss_weights.get(k, 0) for k in ("adv_gen", "adv_feat")):
            raise ValueError("model.loss_weights has adversarial terms but model.discriminator is null")
        if self.perceptual_loss is None and self.loss_weights.get("perceptual", 0):
            raise ValueError("model.loss_weights.perceptual > 0 needs model.perceptual_loss")

    # -- weights ---------------------------------------------------------------------------------------------------
    def weight(self, name: str, generator_steps: int) -> float:
        """The weight of ``name`` at this generator step (the waveform term decays)."""
        weight = self.loss_weights.get(name, 0.0)
        if name == "waveform":
            weight *= self.waveform_decay ** generator_steps
        return weight

    @property
    def output_terms(self) -> list[str]:
        """Weighted terms computed from the reconstruction (the ones the combiner sees)."""
        return [name for name in SHARED_TERMS if self.loss_weights.get(name, 0)]

    def step_logs(self, loss: StepLoss, has_discriminator: bool) -> dict[str, Tensor]:
        """``train/…`` values of a generator step: every term, and each combined term's share and weight.

        Every key is there from the first step on (NaN while a term or the discriminator is off): a key set that
        grows mid-run makes Lightning's CSVLogger rewrite its header, which corrupts metrics.csv.
        """
        logs = {f"train/{name}": value.detach() for name, value in loss.terms.items()}
        logs.update({f"train/share/{k}": torch.tensor(v) for k, v in loss.combined.shares.items()})
        logs.update({f"train/weight/{k}": torch.tensor(v) for k, v in loss.combined.weights.items()})
        keys = [f"train/{name}" for name, weight in self.loss_weights.items() if weight and name != "mel"]
        if has_discriminator:
            keys += ["train/disc", "train/grad_norm_d", "train/adv_gen", "train/adv_feat"]
        for name in self.output_terms:
            keys += [f"train/share/{name}", f"train/weight/{name}"]
        for key in keys:
            logs.setdefault(key, torch.tensor(float("nan")))
        return logs

    # -- losses ----------------------------------------------------------------------------------------------------
    def discriminator_loss(self, discriminator: nn.Module, wav: Tensor, fake: Tensor) -> StepLoss:
        """The discriminator's loss on the real batch ``wav`` and the detached reconstruction ``fake`` (B, 1, T)."""
        loss = discriminator_loss(discriminator(wav), discriminator(fake), kind=self.adversarial_loss)
        return StepLoss(surrogate=loss, value=loss.detach())

    def terms(self, wav: Tensor, y: Tensor, discriminator: nn.Module | None, adversarial_on: bool,
              generator_steps: int) -> dict[str, Tensor]:
        """The weighted terms computed from the reconstruction ``y`` (B, 1, T); weight-0 terms are not computed."""
        def weight(name: str) -> float:
            return self.weight(name, generator_steps)

        if weight("mel"):
            terms = {"mel": self.mel_loss(y, wav)}
        else:
            with torch.no_grad():  # the progress-bar metric, logged but not trained on
                terms = {"mel": self.mel_loss(y, wav)}
        if weight("stft"):
            terms["stft"] = self.stft_loss(y, wav)
        if weight("waveform"):
            terms["waveform"] = self.waveform_loss(y, wav)
        if self.perceptual_loss is not None and weight("perceptual"):
            terms["perceptual"] = self.perceptual_loss(y, wav)
        if adversarial_on and (weight("adv_gen") or weight("adv_feat")):
            fake = discriminator(y)
            with torch.no_grad():
                real = discriminator(wav)
            if weight("adv_gen"):
                terms["adv_gen"] = generator_adversarial_loss(fake, kind=self.adversarial_loss)
            if weight("adv_feat"):
                terms["adv_feat"] = feature_matching_loss(real, fake, normalize=self.feature_matching_normalized)
        return terms

    def generator_loss(self, wav: Tensor, out, discriminator: nn.Module | None, adversarial_on: bool,
                       generator_steps: int) -> StepLoss:
        """The generator's loss on ``out`` (its ``GeneratorOutput`` for ``wav``).

        The terms computed from the reconstruction are differentiated at the output (``output_gradients``) and
        combined there by the combiner; the generator then backpropagates that one gradient, plus the model's own
        terms (weighted plainly), through ``surrogate``. The value Σ c_k·L_k + Σ w·L_own is what the step minimises.
        """
        y = out.audio.detach().float().requires_grad_(True)  # (B, 1, T), a leaf: gradients stop here
        terms = self.terms(wav, y, discriminator, adversarial_on, generator_steps)
        weighted = {name: value for name, value in terms.items() if self.weight(name, generator_steps)}
        weights = {name: self.weight(name, generator_steps) for name in weighted}
        if weighted:
            combined = self.combiner(output_gradients(weighted, y), weights)
        else:  # e.g. adversarial-only weights during the warm-up: nothing pushes the output this step
            combined = Combined(torch.zeros_like(y), {}, {})
        own = {name: value for name, value in out.losses.items() if self.weight(name, generator_steps)}
        loss_own = sum((self.weight(name, generator_steps) * value for name, value in own.items()),
                       torch.zeros((), device=y.device))
        surrogate = (out.audio.float() * combined.gradient).sum() + loss_own
        value = sum(combined.weights[k] * v.detach() for k, v in weighted.items()) + loss_own.detach()
        return StepLoss(surrogate=surrogate, value=value, terms={**terms, **own}, combined=combined)

    def validation_metrics(self, wav: Tensor, recon: Tensor, flipped: Tensor) -> dict[str, Tensor]:
        """``val/…`` distances of ``recon`` to ``wav`` (B, 1, T), and the sign test on ``flipped``, the output for −wav.

        A phase-blind model (one trained on magnitude losses alone) codes x and −x alike: its outputs correlate at
        ≈ +1. One that follows the waveform gives ≈ −1. Cheap to see, and the first thing to check.
        """
        return {
            "val/mel": self.mel_loss(recon, wav),
            "val/stft": self.stft_loss(recon, wav),
            "val/waveform": (recon - wav).abs().mean(),
            "val/si_sdr": si_sdr(recon, wav).mean().float(),
            "val/sign_corr": sign_correlation(recon, flipped).mean(),
        }


def sign_correlation(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation over time of each item of ``a`` and ``b`` (B, 1, T) → (B,); 0 for a silent item."""
    a = a.flatten(1) - a.flatten(1).mean(dim=1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)

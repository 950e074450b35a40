"""How the generator's loss terms are combined: their gradients at the generator output, weighted or balanced.

Shape legend: B batch, T samples; ``y`` is the generator output (B, 1, T).

Every term the training module computes from the reconstruction (mel, STFT, waveform L1, perceptual, adversarial,
feature matching) is a function of ``y`` alone, so its effect on the generator is entirely its gradient
g_k = ∂L_k/∂y. :func:`output_gradients` computes each g_k on a detached copy of ``y``; a combiner turns them into
one output gradient G, and the generator then backpropagates G once (``(y * G).sum()`` as a surrogate loss). This
costs about the same as one backward through the summed loss, since each term's graph is still traversed once.

- :class:`WeightedSum` is the plain weighted sum: G = Σ_k w_k g_k, the same gradient as backpropagating Σ_k w_k L_k.
  A term's influence then hinges on its scale: at init the waveform L1's gradient at the output is ~1500× smaller
  than 15·mel's on the quickstart model, so "weight 1" meant "off".
- :class:`GradientBalancer` is EnCodec's balancer (Défossez et al. 2022, arXiv 2210.13438 §3.4; code:
  facebookresearch/encodec ``balancer.py``): G = Σ_k (w_k / Σ_j w_j) · R · g_k / ⟨‖g_k‖⟩, with ⟨‖g_k‖⟩ a
  bias-corrected moving average of the gradient norm. Each term's share of ‖G‖ is then set by its weight, whatever
  the term's scale, so weights read as shares ("half the gradient follows the waveform").

Both report each term's *effective weight* c_k (G = Σ c_k g_k: training behaves as if Σ c_k L_k were minimised with
c_k held constant) and its *share* ‖c_k g_k‖ / Σ_j ‖c_j g_j‖ of the output gradient, which the module logs.

A combination is a proposal until the step is known to be finite: ``forward`` reads the balancer's running averages
but does not change them; the module calls :meth:`GradientBalancer.commit` only after the all-rank finite check, so
a skipped step (an ``inf`` or ``NaN`` in one term) leaves them as they were. Under DDP the per-step norms are
averaged across ranks before they are used (EnCodec averages them with ``flashy.distrib.average_metrics``), so
every rank applies the same effective weights and holds the same buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass
class Combined:
    """One combined output gradient and what each term contributed to it."""

    gradient: Tensor
    """(B, 1, T): the gradient to backpropagate from the generator output."""
    weights: dict[str, float]
    """Effective weight c_k of each term (G = Σ c_k g_k)."""
    shares: dict[str, float]
    """‖c_k g_k‖ / Σ_j ‖c_j g_j‖: each term's share of the output gradient's norm (they sum to 1)."""
    norms: Tensor | None = None
    """(K,) float64: this step's gradient norm of every declared term (averaged over ranks; 0 for a term absent
    this step), which :meth:`GradientBalancer.commit` folds into the running averages; None for a plain sum."""


def output_gradients(terms: dict[str, Tensor], output: Tensor) -> dict[str, Tensor]:
    """∂L_k/∂output for each scalar term (terms may share graph parts, e.g. one discriminator forward)."""
    names = list(terms)
    grads = {}
    for i, name in enumerate(names):
        (grads[name],) = torch.autograd.grad(terms[name], output, retain_graph=i < len(names) - 1,
                                             allow_unused=True)
        if grads[name] is None:  # a term that does not depend on the output (a constant) pushes nothing
            grads[name] = torch.zeros_like(output)
    return grads


def _norm(grad: Tensor, per_item: bool) -> Tensor:
    """L2 norm of a (B, …) gradient, or the mean over items of each item's norm (EnCodec's ``per_batch_item``)."""
    if per_item:
        return grad.flatten(1).norm(dim=1).mean()
    return grad.norm()


def _shares(grads: dict[str, Tensor], weights: dict[str, float]) -> dict[str, float]:
    norms = {k: abs(weights[k]) * float(grads[k].norm()) for k in grads}
    total = sum(norms.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in norms.items()}


def _mean_over_ranks(values: Tensor) -> Tensor:
    """The mean of ``values`` over DDP ranks (one all-reduce; gloo has no AVG, so SUM / world size)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= dist.get_world_size()
    return values


class WeightedSum(nn.Module):
    """The plain weighted sum G = Σ_k w_k g_k (today's behaviour: the gradient of Σ_k w_k L_k)."""

    def forward(self, grads: dict[str, Tensor], weights: dict[str, float]) -> Combined:
        gradient = sum(weights[k] * g for k, g in grads.items())
        return Combined(gradient, dict(weights), _shares(grads, weights))

    def commit(self, combined: Combined) -> None:
        """Nothing to remember: a plain sum has no state."""


class GradientBalancer(nn.Module):
    """EnCodec's loss balancer on the generator output: each term's share of the output gradient is its weight.

    Args:
        total_norm: R, the norm the combined output gradient aims at (EnCodec: 1). Adam is invariant to a
            constant scale of the loss, so R mostly matters for gradient clipping.
        ema_decay: β of the moving average of each term's gradient norm (EnCodec: 0.999). The average is
            bias-corrected (Σ β^(t−s) n_s / Σ β^(t−s)), so the first steps are balanced too.
        per_item: average the per-item gradient norms instead of taking the norm over the whole batch
            (EnCodec's ``per_batch_item``, default on).
        terms: the names of the terms it will see (``CodecModule`` fills this from ``loss_weights``); the
            averages are buffers, one slot per term, so a resumed run continues them exactly.
        eps: floor of the averaged norm, so a term whose gradient vanishes is not blown up.
    """

    def __init__(self, total_norm: float = 1.0, ema_decay: float = 0.999, per_item: bool = True,
                 terms: tuple[str, ...] = (), eps: float = 1e-12):
        super().__init__()
        if not total_norm > 0:
            raise ValueError(f"balancer.total_norm must be > 0, got {total_norm}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"balancer.ema_decay must be in [0, 1), got {ema_decay}")
        self.total_norm, self.ema_decay, self.per_item, self.eps = float(total_norm), float(ema_decay), per_item, eps
        self.terms: tuple[str, ...] = ()
        self.register_buffer("_norm_sum", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("_weight_sum", torch.zeros(0, dtype=torch.float64))
        self.set_terms(terms)

    def set_terms(self, terms) -> None:
        """Fix the term order of the moving averages (before training starts: it resets them)."""
        self.terms = tuple(sorted(terms))
        self._norm_sum = torch.zeros(len(self.terms), dtype=torch.float64, device=self._norm_sum.device)
        self._weight_sum = torch.zeros(len(self.terms), dtype=torch.float64, device=self._weight_sum.device)

    def average_norms(self) -> dict[str, float]:
        """The bias-corrected moving average ⟨‖g_k‖⟩ of every term seen so far."""
        seen = self._weight_sum > 0
        return {k: float(self._norm_sum[i] / self._weight_sum[i]) for i, k in enumerate(self.terms) if seen[i]}

    def forward(self, grads: dict[str, Tensor], weights: dict[str, float]) -> Combined:
        unknown = sorted(set(grads) - set(self.terms))
        if unknown:
            raise ValueError(f"balancer: terms {unknown} were not declared; declared: {list(self.terms)}")
        total_weight = sum(weights[k] for k in grads)
        if not total_weight > 0:
            raise ValueError(f"balancer: the weights of the balanced terms sum to {total_weight}, need > 0")
        norms = torch.zeros(len(self.terms), dtype=torch.float64, device=self._norm_sum.device)
        with torch.no_grad():
            for i, name in enumerate(self.terms):
                if name in grads:
                    norms[i] = _norm(grads[name], self.per_item).double()
            norms = _mean_over_ranks(norms)
            # The averages this step would give; the buffers change only in commit(), after the finite check.
            norm_sum = self.ema_decay * self._norm_sum + norms
            weight_sum = self.ema_decay * self._weight_sum + 1.0
            average = (norm_sum / weight_sum).tolist()
        effective = {name: weights[name] / total_weight * self.total_norm / max(average[i], self.eps)
                     for i, name in enumerate(self.terms) if name in grads}
        gradient = sum(effective[k] * g for k, g in grads.items())
        return Combined(gradient, effective, _shares(grads, effective), norms)

    @torch.no_grad()
    def commit(self, combined: Combined) -> None:
        """Fold a finite step's norms into the running averages (terms absent from that step keep theirs)."""
        present = torch.tensor([name in combined.weights for name in self.terms], device=self._norm_sum.device)
        if not torch.isfinite(combined.norms).all():
            raise ValueError(f"balancer: refusing to fold non-finite norms {combined.norms.tolist()} "
                             f"of terms {list(self.terms)}")
        self._norm_sum.copy_(torch.where(present, self.ema_decay * self._norm_sum + combined.norms, self._norm_sum))
        self._weight_sum.copy_(torch.where(present, self.ema_decay * self._weight_sum + 1.0, self._weight_sum))

    def extra_repr(self) -> str:
        return (f"total_norm={self.total_norm:g}, ema_decay={self.ema_decay:g}, per_item={self.per_item}, "
                f"terms={list(self.terms)}")

"""Factorised residual vector quantiser with per-item quantizer dropout, as in DAC (Improved RVQGAN, arXiv 2306.06546).

Shape legend: B batch, D latent dim, S latent frames, K codebooks (stages), E codebook dim (factorised, 8).

Why this is written here rather than taken from vector-quantize-pytorch's ``ResidualVQ`` (1.32, checked in its
``residual_vq.py`` / ``vector_quantize_pytorch.py``):

- Quantizer dropout: ``ResidualVQ`` draws ONE cutoff depth for the whole batch (seed all-reduced across ranks) and
  skips the later stages (indices −1). DAC draws n_q ~ U{1..K} per item for the first ⌊B·p⌋ items only, the rest
  keep all K, and every stage still runs with its contribution and losses masked per item, so no parameter drops
  out of the autograd graph (DDP's unused-parameter check stays quiet). Its flags express neither part.
- Codebook: its cosine-sim codebook stores unit-normalised rows, updates them by EMA by default (decay 0.8) and
  returns the normalised row. DAC keeps a plain ``nn.Embedding`` (N(0, 1) init, learned by the codebook loss, no
  EMA, no k-means), normalises only to choose the index, and returns the RAW row.
- Losses: DAC keeps commitment and codebook losses separate and per item (mean over E and S), which the dropout
  mask needs; ``ResidualVQ`` returns a batch-reduced commitment loss per stage (its codebook learns by EMA).
- Indices: we return int64 (B, K, S) everywhere.

The loop below is short enough that matching DAC exactly by hand is cheaper than bending the library.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from taae.nn.conv import WNConv1d


@dataclass
class RVQOutput:
    """What ``ResidualVectorQuantizer.forward`` returns."""

    z_q: Tensor
    """(B, D, S) quantised latent: sum of the kept stages' out_proj outputs (straight-through to the input)."""
    codes: Tensor
    """(B, K', S) int64 indices of every stage that ran (K' = K in training; masked stages are still listed)."""
    latents: Tensor
    """(B, K'·E, S) the factorised projections z_e of each stage, concatenated along channels."""
    commitment_loss: Tensor
    """Scalar: Σ over stages of the batch mean of per-item MSE(z_e, sg(z_q)), masked items counting as zero."""
    codebook_loss: Tensor
    """Scalar: Σ over stages of the batch mean of per-item MSE(z_q, sg(z_e)), masked items counting as zero."""
    n_quantizers: Tensor
    """(B,) int64 number of stages each item used."""


class VectorQuantizer(nn.Module):
    """One factorised VQ stage (DAC §7): project D → E, pick the max-cosine codebook row, project E → D."""

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.codebook_size = codebook_size
        self.in_proj = WNConv1d(input_dim, codebook_dim, kernel_size=1)
        self.out_proj = WNConv1d(codebook_dim, input_dim, kernel_size=1)
        # nn.Embedding's N(0, 1) init, no EMA, no k-means init (DAC §7).
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def lookup(self, z_e: Tensor) -> Tensor:
        """(B, E, S) projections → (B, S) int64 indices of the max-cosine codebook rows.

        DAC takes the nearest neighbour by Euclidean distance between the L2-normalised vectors; on unit vectors
        that is the argmax of the dot product, computed here directly.
        """
        enc = F.normalize(rearrange(z_e, "b e s -> b s e"), dim=-1)
        book = F.normalize(self.codebook.weight, dim=-1)
        return (enc @ book.t()).argmax(dim=-1)

    def embed(self, codes: Tensor) -> Tensor:
        """(B, S) indices → (B, E, S) raw (un-normalised) codebook rows."""
        return rearrange(self.codebook(codes), "b s e -> b e s")

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(B, D, S) residual → (out (B, D, S), codes (B, S), z_e (B, E, S), commitment (B,), codebook (B,))."""
        z_e = self.in_proj(z)
        codes = self.lookup(z_e)
        z_q = self.embed(codes)
        commitment = F.mse_loss(z_e, z_q.detach(), reduction="none").mean(dim=(1, 2))
        codebook = F.mse_loss(z_q, z_e.detach(), reduction="none").mean(dim=(1, 2))
        z_q = z_e + (z_q - z_e).detach()  # straight-through: forward value z_q, gradient to z_e
        return self.out_proj(z_q), codes, z_e, commitment, codebook


class ResidualVectorQuantizer(nn.Module):
    """K factorised VQ stages on full-space residuals, with DAC's per-item quantizer dropout (DAC §7).

    Args:
        input_dim: D, the encoder latent width.
        n_codebooks: K stages.
        codebook_size: entries per codebook.
        codebook_dim: E, the factorised lookup width (8 in DAC, after ViT-VQGAN / Improved VQGAN).
        quantizer_dropout: p, the fraction of each training batch (its FIRST ⌊B·p⌋ items) that gets a random
            n_q ~ U{1..K}; the others use all K stages.
    """

    def __init__(self, input_dim: int, n_codebooks: int, codebook_size: int, codebook_dim: int = 8,
                 quantizer_dropout: float = 0.5):
        super().__init__()
        for key, value in (("input_dim", input_dim), ("n_codebooks", n_codebooks),
                           ("codebook_size", codebook_size), ("codebook_dim", codebook_dim)):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.n_codebooks = n_codebooks
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim
        self.quantizer_dropout = quantizer_dropout
        self.quantizers = nn.ModuleList(
            VectorQuantizer(input_dim, codebook_size, codebook_dim) for _ in range(n_codebooks)
        )

    def _check_n(self, n: int, what: str) -> None:
        if not 1 <= n <= self.n_codebooks:
            raise ValueError(f"{what} must be in 1..{self.n_codebooks}, got {n}")

    def forward(self, z: Tensor, n_quantizers: int | None = None, dropout: bool | None = None) -> RVQOutput:
        """Quantise (B, D, S) latents.

        Args:
            z: (B, D, S) encoder output.
            n_quantizers: use exactly the first n stages for every item, in train AND eval mode (no dropout then).
                DAC ignores this argument in train mode; here it always wins.
            dropout: apply quantizer dropout; None means ``self.training``. ``dropout=True`` together with
                ``n_quantizers`` is contradictory and raises.

        In training mode every stage runs (masked), so that all parameters stay in the graph; in eval mode the loop
        stops after the last stage any item uses.
        """
        batch = z.shape[0]
        if n_quantizers is not None:
            self._check_n(n_quantizers, "n_quantizers")
            if dropout:
                raise ValueError("n_quantizers and dropout=True are mutually exclusive")
            dropout = False
        elif dropout is None:
            dropout = self.training
        n_q = torch.full((batch,), n_quantizers or self.n_codebooks, dtype=torch.long, device=z.device)
        if dropout and self.quantizer_dropout > 0:
            # DAC: the FIRST int(B·p) items get n_q ~ U{1..K}, not a random subset.
            n_drop = int(batch * self.quantizer_dropout)
            n_q[:n_drop] = torch.randint(1, self.n_codebooks + 1, (n_drop,)).to(z.device)
        n_run = self.n_codebooks if self.training else int(n_q.max())

        # fp32 outside autocast: argmax over cosines and the residual subtraction are precision-sensitive.
        with torch.autocast(device_type=z.device.type, enabled=False):
            residual = z.float()
            z_q = torch.zeros_like(residual)
            commitment = codebook = residual.new_zeros(())
            codes, latents = [], []
            for i, stage in enumerate(self.quantizers[:n_run]):
                out, codes_i, z_e_i, commitment_i, codebook_i = stage(residual)
                mask = (n_q > i).to(residual.dtype)  # (B,)
                z_q = z_q + out * rearrange(mask, "b -> b 1 1")
                residual = residual - out  # unmasked, as in DAC
                commitment = commitment + (commitment_i * mask).mean()
                codebook = codebook + (codebook_i * mask).mean()
                codes.append(codes_i)
                latents.append(z_e_i)
        return RVQOutput(
            z_q=z_q,
            codes=torch.stack(codes, dim=1),  # (B, K', S)
            latents=torch.cat(latents, dim=1),  # (B, K'·E, S)
            commitment_loss=commitment,
            codebook_loss=codebook,
            n_quantizers=n_q,
        )

    def from_codes(self, codes: Tensor) -> Tensor:
        """(B, k, S) int64 indices → (B, D, S) quantised latent from exactly the first k stages."""
        if codes.dim() != 3:
            raise ValueError(f"codes must have shape (B, k, S), got {tuple(codes.shape)}")
        self._check_n(codes.shape[1], "number of code rows")
        z_q = 0.0
        with torch.autocast(device_type=codes.device.type, enabled=False):  # same fp32 path as forward
            for stage, codes_i in zip(self.quantizers, codes.long().unbind(dim=1)):
                z_q = z_q + stage.out_proj(stage.embed(codes_i))
        return z_q

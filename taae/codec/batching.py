"""Batched variable-length coding that gives every item exactly its single-item tokens.

Shape legend: T samples, K tokens per frame, S latent frames, B items in a group.

Why not one padded batch: the padding is part of what a TAAE's convs and sliding-window attention see, so the last
frames of every shorter item change (measured on the tiny model: 4–15 tokens of each of five items of 0.3–4 s
padded to 7 s). Items are therefore grouped by their frame count S, so that every item of a group is padded to
S · hop exactly as its own encode pads it:

    items ─group by S (first appearance order), ≤ max_frames per group─► (B, 1, S·hop) ─encode─► (B, K, S)

Equal inputs are not enough for equal bits: a batch of B runs other kernels than a batch of 1 (oneDNN picks the
conv algorithm by shape; the tiny TAAE's head conv differs by ~1e-7 at B = 4), and a latent that close to a
rounding boundary would flip a token. Every token is a monotone function of each latent value (tanh, then FSQ or
residual FSQ stages, each a rounding of what the earlier ones left), so the tokens of ``z − δ`` and ``z + δ``
agreeing proves that every latent within δ of ``z`` gives the same tokens. An item whose tokens are not proven
this way is encoded again on its own: with ``δ`` above the batch-size noise the result is exact. Models without a
latent-to-token split (RVQGAN: a nearest-codebook search is not monotone) are encoded one item at a time.
Decoding needs no such guard (audio is compared within float rounding), only the grouping.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from taae.codec.chunking import chunked
from taae.models.base import num_frames

__all__ = ["EXACT_MARGIN", "group_by_frames"]

EXACT_MARGIN = 1e-6
"""δ of the proof above, relative: |Δz| ≤ δ · (1 + |z|). Batch-size noise measured on the tiny TAAE (CPU, B = 4
vs 1): max |Δz| 1.0e-7, so 10× headroom (ours). A larger δ re-encodes more items alone, never changes a token:
16 items of 4 s at 700 bps re-encoded 1 alone at 1e-6, 4 at 1e-5."""


def group_by_frames(frames: Sequence[int], max_frames: int | None) -> list[list[int]]:
    """Indices grouped by equal frame count, groups in order of first appearance, each split so that it holds at
    most ``max_frames`` frames in all (and at least one item). ``max_frames=None``: no limit."""
    groups: dict[int, list[list[int]]] = {}
    order: list[list[int]] = []
    for index, count in enumerate(frames):
        chunks = groups.setdefault(count, [])
        if not chunks or (max_frames is not None and (len(chunks[-1]) + 1) * count > max_frames):
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(index)
    return order


def encode_items(codec, items: Sequence[Tensor], preset: str, max_frames: int | None) -> list[Tensor]:
    """Pre-processed items, each (1, T_i) at the codec's rate → their tokens, each (1, K, S_i) int64 on the CPU,
    equal to ``codec.encode_prepared(item[None], preset)`` item by item."""
    hop = codec.hop_length
    frames = [num_frames(x.shape[-1], hop) for x in items]
    out: list[Tensor | None] = [None] * len(items)
    for group in group_by_frames(frames, max_frames):
        count = frames[group[0]]
        wav = torch.stack([F.pad(items[i], (0, count * hop - items[i].shape[-1])) for i in group])  # (B, 1, S·hop)
        for i, tokens in zip(group, _encode_group(codec, wav, count, preset)):
            out[i] = tokens.unsqueeze(0)
    return out


def _encode_group(codec, wav: Tensor, frames: int, preset: str) -> Tensor:  # (B, 1, S·hop) → (B, K, S)
    runner = codec._runner
    if wav.shape[0] == 1 or not hasattr(runner, "tokens_from_latent"):
        return torch.cat([codec._encode(w.unsqueeze(0), preset) for w in wav])
    with codec.inference.context(codec.device):
        z = chunked(runner.encode_unbounded, wav.to(codec.device), frames, codec.hop_length, 1,
                    codec.chunk_frames, codec.overlap_frames)  # (B, D, S), pre-tanh
        delta = EXACT_MARGIN * (1 + z.abs())
        tokens = runner.tokens_from_latent(z, preset)
        unsure = (runner.tokens_from_latent(z - delta, preset) != runner.tokens_from_latent(z + delta, preset))
    tokens = tokens.to("cpu", torch.int64).clone()  # a normal tensor: inference tensors refuse in-place writes
    for i in unsure.flatten(1).any(1).nonzero().flatten().tolist():  # not proven: this item alone
        tokens[i] = codec._encode(wav[i:i + 1], preset)[0]
    return tokens


def decode_items(codec, tokens: Sequence[Tensor], preset: str, num_samples: Sequence[int | None],
                 max_frames: int | None) -> list[Tensor]:
    """Tokens, each (K, S_i) → audio, each (1, T_i) float32 on the CPU (``num_samples[i]`` or S_i · hop), equal to
    ``codec.decode(tokens[i], preset, num_samples[i])`` within float rounding."""
    hop = codec.hop_length
    for i, (t, n) in enumerate(zip(tokens, num_samples)):
        if n is not None and not 0 < n <= t.shape[-1] * hop:
            raise ValueError(f"Codec.decode: num_samples[{i}] = {n} must be in 1 … {t.shape[-1] * hop} "
                             f"({t.shape[-1]} frames of {hop} samples)")
    out: list[Tensor | None] = [None] * len(tokens)
    for group in group_by_frames([t.shape[-1] for t in tokens], max_frames):
        wav = codec.decode(torch.stack([tokens[i] for i in group]), preset)  # (B, S·hop)
        for i, item in zip(group, wav):
            out[i] = item[: num_samples[i]].unsqueeze(0)
    return out


def split_lengths(batch: Tensor, lengths: Sequence[int], what: str, unit: str) -> list[Tensor]:
    """A padded batch (B, …, L) and per-item lengths → the items, each cropped to its length on the last axis.
    Raises ``ValueError`` naming the item when a length is not in 1 … L or the counts differ."""
    lengths = [int(n) for n in torch.as_tensor(lengths).flatten().tolist()]
    if len(lengths) != batch.shape[0]:
        raise ValueError(f"{what}: {len(lengths)} lengths for a batch of {batch.shape[0]} items")
    for i, n in enumerate(lengths):
        if not 0 < n <= batch.shape[-1]:
            raise ValueError(f"{what}: lengths[{i}] = {n} {unit} is beyond the batch's {batch.shape[-1]} {unit} "
                             f"(each length must be in 1 … {batch.shape[-1]})")
    return [batch[i, ..., :n] for i, n in enumerate(lengths)]


def max_frames_of(codec, batch_seconds: float | None) -> int | None:
    """``batch_seconds`` of audio as latent frames per group (None: no limit)."""
    if batch_seconds is None:
        return None
    if not batch_seconds > 0:
        raise ValueError(f"batch_seconds must be > 0 or None, got {batch_seconds}")
    return max(1, round(batch_seconds * codec.frame_rate))

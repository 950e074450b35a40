"""Overlap chunking: run a frame-aligned encoder or decoder on a long input one bounded chunk at a time.

Holds :func:`chunked` and its defaults, used by :class:`taae.codec.Codec` for every encode and decode. With a
practical overlap the stitched result is an approximation for TAAE, whose receptive field is far longer than any
chunk (§9 item 13); the measured seam error per overlap is §10.

Shape legend: T samples, S latent frames; ``fn`` maps the last axis, every other axis passes through.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["DEFAULT_CHUNK_SECONDS", "DEFAULT_OVERLAP_FRAMES", "chunked"]

DEFAULT_CHUNK_SECONDS = 30.0
"""Inputs longer than this are encoded and decoded in chunks (ours; bounds memory to one chunk's activations)."""
DEFAULT_OVERLAP_FRAMES = 64
"""Latent frames of context kept on each side of a chunk and discarded (2.56 s at 25 Hz: half the 128-frame
attention window of the paper's 25 Hz layers). Chosen from ``benchmarks/long_file.py``; the measured seam error per
overlap, and why chunking stays approximate for real models, is ``docs/decisions.md`` §10."""


def chunked(fn: Callable[[Tensor], Tensor], x: Tensor, frames: int, in_per_frame: int, out_per_frame: int,
            chunk_frames: int | None, overlap_frames: int) -> Tensor:
    """Apply a frame-aligned map ``fn`` to ``x`` in overlapping chunks and stitch the central parts.

    ``x`` holds ``frames · in_per_frame`` steps on its last axis, ``fn`` maps n·in_per_frame steps to
    n·out_per_frame (encode: hop → 1; decode: 1 → hop). The frames are cut into equal chunks of at most
    ``chunk_frames``; chunk [a, b) runs on [a − o, b + o) (clipped to the input) and keeps only its own frames:

        frames   |---- chunk 0 ----|---- chunk 1 ----|---- chunk 2 ----|
        run on   |---- chunk 0 ----|oo|                                     o = overlap_frames, discarded
        run on                  |oo|---- chunk 1 ----|oo|
        run on                                    |oo|---- chunk 2 ----|

    Boundaries fall on whole latent frames (whole patches and strides), so the output has exactly the
    ``frames · out_per_frame`` steps of a whole-input call, and at the edges of the input both see the same
    padding. Within a chunk the result equals the whole-input one only if the overlap covers the model's
    receptive field; TAAE's is enormous (200 s in total for the paper's model), so with a practical overlap the
    stitched result is an approximation whose seam error falls with the overlap (measured in
    :data:`DEFAULT_OVERLAP_FRAMES`). ``chunk_frames=None`` or an input of at most one chunk runs whole.
    """
    if overlap_frames < 0:
        raise ValueError(f"overlap_frames must be >= 0, got {overlap_frames}")
    if chunk_frames is None or frames <= chunk_frames:
        return fn(x)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    count = math.ceil(frames / chunk_frames)
    size = math.ceil(frames / count)  # equal chunks: no tiny last chunk with little context
    pieces = []
    for start in range(0, frames, size):
        end = min(start + size, frames)
        lo, hi = max(0, start - overlap_frames), min(frames, end + overlap_frames)
        y = fn(x[..., lo * in_per_frame: hi * in_per_frame])
        assert y.shape[-1] == (hi - lo) * out_per_frame, (y.shape, lo, hi)
        pieces.append(y[..., (start - lo) * out_per_frame: (end - lo) * out_per_frame])
    return torch.cat(pieces, dim=-1)

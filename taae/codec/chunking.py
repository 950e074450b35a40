"""Overlap chunking: run a frame-aligned encoder or decoder on a long input one bounded chunk at a time.

Holds :func:`chunked` and its defaults, used by :class:`taae.codec.Codec` for every encode and decode. With a
practical overlap the stitched result is an approximation for TAAE, whose receptive field is far longer than any
chunk (§9 item 13); :data:`DEFAULT_OVERLAP_FRAMES` records the measured seam error.

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
attention window of the paper's 25 Hz layers). Chosen from ``benchmarks/long_file.py`` (180 s of the demo speech,
30 s chunks, 5 seams; rel = RMS error of decoding the same tokens chunked vs whole, over the RMS of the output):

    configs/taae/tiny.yaml, random weights, LayerScale 1 (worst case: every transformer layer mixes its whole window)
    overlap (frames)         0       4       8      16      32      64     128     200
    latent max |Δ|        0.28   0.035   0.032   0.033   0.024  7.8e-3  8.2e-4  4.3e-7
    tokens changed (700)  5.0%    4.0%    3.5%    2.9%    2.0%   0.63%   0.04%      0
    decode rel (dB)      -28.1   -34.8   -35.8   -37.8   -43.0   -54.8   -83.4  -125.5

    the same config trained 20 steps (runs/quickstart: LayerScale still ~1e-3, nearly convolutional)
    latent max |Δ|        0.10   3.1e-5  2.6e-5  2.3e-5  1.4e-5  1.4e-6  3.0e-8  3.0e-8
    tokens changed (700)  0.18%      0       0       0       0       0       0       0
    decode rel (dB)      -26.8   -74.4   -74.9   -77.8   -88.9  -121.3  -124.3  -124.3

Chunking is exact (float noise, no token changes) once the overlap covers the receptive field: ~196 latent
frames for tiny.yaml (two layers with a ±64-step window at 50 Hz and two at 25 Hz: 2·32 + 2·64 frames, plus the
convs), but 200 s in total for the paper's model (Table 11), which no practical overlap covers: for real models
chunked coding is an approximation. At 64 frames the worst case above leaves a seam error 55 dB below the signal
(far below any codec's reconstruction error at 0.4–1 kbps) and changes 0.6% of the tokens (all within 90 frames
of a seam, half within 10), for 17% extra compute on 30 s chunks; 128 frames buys -83 dB for 34%. Pass
``overlap_frames`` (≥ the receptive field for exact results) or ``chunk_seconds=None`` (whole file, memory grows
with the length) to choose otherwise. For the convolutional RVQGAN (DAC's receptive field is 0.76 s, Table 11),
64 frames at 50 Hz cover it and chunking is exact (configs/rvqgan/tiny.yaml, 25 s in 5 s chunks: no token
changes, decode max |Δ| 8e-8).
"""


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

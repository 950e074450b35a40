"""``Codec``: the inference API. Load a trained codec, encode and decode files and tensors, chunk long inputs.

Shape legend: B batch, C channels, T samples, K tokens per frame, S latent frames.

    file / tensor (C, T) at any rate ─preprocess→ (1, T') at the model's rate, −20 LUFS
        ─pad to S·hop→ model.encode (chunked) ─→ tokens (1, K, S) int64 ─→ TokenFile (.npz)
    tokens ─model.decode (chunked)→ (1, S·hop) ─crop→ (1, T')

Files and tensors take the same pre-processing (the official API skips it for tensors, spec §15 item 6).
Checkpoints load strictly and report every missing, unexpected or mis-shaped key (§15 item 8). Long inputs are
processed in overlapping chunks with bounded memory; see :func:`chunked` for why this is approximate (§15 item 13).

Loading a Lightning ``.ckpt`` unpickles it: load only checkpoints you trust. An export (``config.json`` +
``model.safetensors``) executes no code when loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taae import __version__, audio
from taae.models import instantiate
from taae.models.base import TokenSpec, count_parameters, num_frames
from taae.tokens import TokenFile

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
TARGET_LUFS = -20.0
"""Loudness every input is normalised to (spec §8, the training data's level)."""

EXPORT_FORMAT = "taae-export"
EXPORT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_STAGES = re.compile(r"(\d+(?:x\d+)*)(?::([0-9.eE+-]+(?:,[0-9.eE+-]+)*))?")


# -- helpers ---------------------------------------------------------------------------------------------------

def parse_stages(text: str) -> list[tuple[int, float]]:
    """Parse post-hoc residual FSQ stages written as ``LEVELSxLEVELS…[:SCALE,SCALE,…]``.

    Levels are per stage (the same on every latent dimension); scales default to the exact-nesting rule
    s_0 = 1, s_{k+1} = s_k / (L_k − 1) (spec §7). Examples: ``"5x5:1,0.25"`` or ``"5x5"`` is the 700 bps preset,
    ``"3x3x3x3"`` the 1000 bps one, ``"6"`` the 400 bps one.

    Returns:
        ``[(levels, scale), …]``, one pair per stage.
    """
    match = _STAGES.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"cannot parse stages {text!r}; expected e.g. '5x5:1,0.25' (levels per stage joined by "
                         "'x', optionally ':' and one scale per stage)")
    levels = [int(v) for v in match.group(1).split("x")]
    if match.group(2) is None:
        scales = [1.0]
        for lv in levels[:-1]:
            scales.append(scales[-1] / max(lv - 1, 1))
    else:
        scales = [float(v) for v in match.group(2).split(",")]
    if len(scales) != len(levels):
        raise ValueError(f"stages {text!r}: {len(levels)} stages but {len(scales)} scales")
    return list(zip(levels, scales))


def weights_hash(state_dict: dict[str, Tensor]) -> str:
    """First 16 hex digits of a sha256 over every entry (name, dtype, shape, bytes) in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


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


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """``{class_path, init_args: {config}}`` for a model whose constructor takes its config dataclass, else None."""
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return None
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    return {"class_path": f"{type(model).__module__}.{type(model).__qualname__}", "init_args": {"config": values}}


def _device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use device='cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} requested but MPS is not available; use device='cpu'")
    return device


def _load_strict(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one error that lists every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                  for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        def head(keys):
            return f"{keys[:8]}{' …' if len(keys) > 8 else ''}"
        raise ValueError(
            f"{source} does not match {type(model).__name__} built from its config: "
            f"{len(missing)} missing keys {head(missing)}, {len(unexpected)} unexpected keys {head(unexpected)}, "
            f"{len(mismatched)} shape mismatches (file vs model) {head(mismatched)}"
        )
    model.load_state_dict(state, strict=True)


def _read_checkpoint(path: Path, use_ema: bool) -> tuple[dict[str, Any], dict[str, Tensor], str]:
    """(generator spec, generator state dict, "ema" | "generator") from a Lightning checkpoint."""
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # Lightning stores hyper-parameters that only full unpickling restores
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "generator" not in ckpt.get("taae", {}):
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a taae training checkpoint: expected 'state_dict' and 'taae' "
                         f"(with 'generator') entries, found {keys}")
    state = ckpt["state_dict"]
    has_ema = any(k.startswith("ema.model.") for k in state)
    which = "ema" if use_ema and has_ema else "generator"
    prefix = "ema.model." if which == "ema" else "generator."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise ValueError(f"{path} holds no weights under {prefix!r}")
    return ckpt["taae"]["generator"], weights, which


# -- the codec -------------------------------------------------------------------------------------------------

class Codec:
    """A codec model ready for inference: eval mode, no gradients, one pre-processing path, chunked long inputs.

    Args:
        model: a codec model with the interface of ``taae.models.base`` (TAAE or RVQGAN).
        device: where the model runs ("cpu" by default; "cuda" raises if CUDA is unavailable).
        chunk_seconds: inputs longer than this run in chunks (None: always whole).
        overlap_frames: latent frames of context on each side of a chunk (see :data:`DEFAULT_OVERLAP_FRAMES`).
        target_lufs: loudness of the pre-processed input.
        spec: the ``{class_path, init_args}`` that rebuilds ``model`` for :meth:`export`; by default derived from
            the model's config dataclass.
        weights: which weights were loaded ("ema", "generator", "export" or "memory"), for reports.

    Use :meth:`load` for checkpoints and exports.
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu",
                 chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS, overlap_frames: int = DEFAULT_OVERLAP_FRAMES,
                 target_lufs: float = TARGET_LUFS, spec: dict[str, Any] | None = None, weights: str = "memory"):
        if chunk_seconds is not None and not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be > 0 or None, got {chunk_seconds}")
        if overlap_frames < 0:
            raise ValueError(f"overlap_frames must be >= 0, got {overlap_frames}")
        self.device = _device(device)
        self.model = model.to(self.device).eval()
        self.chunk_seconds = chunk_seconds
        self.overlap_frames = int(overlap_frames)
        self.target_lufs = target_lufs
        self.spec = spec if spec is not None else model_spec(model)
        self.weights = weights
        self.model_hash = weights_hash(self.model.state_dict())
        self._custom_presets: dict[str, dict[str, Any]] = {}

    # -- loading and export ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True,
             **kwargs) -> Codec:
        """Load a Lightning checkpoint (``.ckpt``) or an exported folder (or its ``config.json``).

        A checkpoint's generator is rebuilt from ``checkpoint["taae"]["generator"]``; its EMA weights
        (``ema.model.*``) are used when present and ``use_ema``, else ``generator.*``. Loading is strict: any
        missing, unexpected or mis-shaped key raises ``ValueError`` listing them. ``kwargs`` go to ``Codec``.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint or export not found: {path}")
        if path.is_dir() or path.name == CONFIG_NAME:
            return cls._load_export(path if path.is_dir() else path.parent, device, **kwargs)
        spec, state, which = _read_checkpoint(path, use_ema)
        model = instantiate(spec, f"{path}: taae.generator")
        _load_strict(model, state, f"{path} ({which} weights)")
        return cls(model, device=device, spec=spec, weights=which, **kwargs)

    @classmethod
    def _load_export(cls, folder: Path, device, **kwargs) -> Codec:
        from safetensors.torch import load_file

        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for p in (config_path, weights_path):
            if not p.is_file():
                raise FileNotFoundError(f"{folder} is not a taae export: {p.name} is missing")
        config = json.loads(config_path.read_text())
        if config.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{config_path}: format is {config.get('format')!r}, expected {EXPORT_FORMAT!r}")
        if not 1 <= int(config.get("version", 0)) <= EXPORT_VERSION:
            raise ValueError(f"{config_path}: export version {config.get('version')!r} is not supported; this "
                             f"taae reads versions 1 … {EXPORT_VERSION}")
        model = instantiate(config["generator"], f"{config_path}: generator")
        _load_strict(model, load_file(str(weights_path)), str(weights_path))
        codec = cls(model, device=device, spec=config["generator"], weights="export", **kwargs)
        if codec.model_hash != config["model_hash"]:
            raise ValueError(f"{weights_path} hashes to {codec.model_hash} but {config_path} records "
                             f"{config['model_hash']}: the weights were changed or corrupted")
        for name, preset in config.get("presets", {}).items():
            codec.add_preset(name, [tuple(s) for s in preset["stages"]], allow_lossy=preset["allow_lossy"])
        return codec

    def export(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` (generator spec, rates, hash, version, user presets) and ``model.safetensors``."""
        from safetensors.torch import save_file

        if self.spec is None:
            raise ValueError(f"cannot export {type(self.model).__name__}: it has no config dataclass; pass spec=")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.model.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"model_hash": self.model_hash})
        config = {
            "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "taae_version": __version__,
            "generator": self.spec, "weights": self.weights, "model_hash": self.model_hash,
            "sample_rate": self.sample_rate, "frame_rate": self.frame_rate, "hop_length": self.hop_length,
            "presets": self._custom_presets,
        }
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        return folder

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def hop_length(self) -> int:
        return int(self.model.hop_length)

    @property
    def frame_rate(self) -> float:
        return float(self.model.frame_rate)

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)

    @property
    def chunk_frames(self) -> int | None:
        return None if self.chunk_seconds is None else max(1, round(self.chunk_seconds * self.frame_rate))

    # -- presets ---------------------------------------------------------------------------------------------
    def presets(self) -> dict[str, TokenSpec]:
        """The model's named token layouts (``native`` always exists), including user presets."""
        return self.model.presets()

    def aliases(self) -> dict[str, str]:
        """Short names: ``700bps`` for ``2x15625_700bps`` (the part after the last ``_``, when unique and not a
        different preset). Token files record the full name."""
        presets = self.presets()
        tails: dict[str, list[str]] = {}
        for name in presets:
            if "_" in name:
                tails.setdefault(name.rsplit("_", 1)[1], []).append(name)
        return {tail: names[0] for tail, names in tails.items() if len(names) == 1
                and (tail not in presets or presets[tail].vocab_sizes == presets[names[0]].vocab_sizes)}

    def resolve_preset(self, preset: str | None) -> str:
        """The model's full name for ``preset``: a preset name, an alias, or stages such as ``"5x5:1,0.25"``."""
        name = "native" if preset is None else str(preset)
        presets, aliases = self.presets(), self.aliases()
        if name in aliases:
            return aliases[name]
        if name in presets:
            return name
        if _STAGES.fullmatch(name) and hasattr(self.model, "add_preset"):
            self.add_preset(name, parse_stages(name))
            return name
        raise ValueError(f"unknown preset {name!r}; known presets: {list(presets)}, aliases: "
                         f"{list(aliases)}, or stages such as '5x5:1,0.25' (TAAE)")

    def add_preset(self, name: str, stages, allow_lossy: bool = False) -> TokenSpec:
        """Register post-hoc residual FSQ stages ``[(levels, scale), …]`` (or a :func:`parse_stages` string)."""
        if not hasattr(self.model, "add_preset"):
            raise ValueError(f"{type(self.model).__name__} has no user presets; known: {list(self.presets())}")
        if isinstance(stages, str):
            stages = parse_stages(stages)
        spec = self.model.add_preset(name, stages, allow_lossy=allow_lossy)
        self._custom_presets[name] = {"stages": [list(s) for s in stages], "allow_lossy": allow_lossy}
        return spec

    # -- encode / decode -------------------------------------------------------------------------------------
    def preprocess(self, wav: Tensor, sample_rate: int, normalize: bool = True, source: str | None = None) -> Tensor:
        """The one pre-processing for files and tensors: (C, T) or (T,) at ``sample_rate`` → (1, T') mono at the
        model's rate, loudness-normalised to ``target_lufs`` unless ``normalize=False``."""
        if isinstance(wav, np.ndarray):
            wav = torch.from_numpy(wav)
        return audio.preprocess(wav, sample_rate, self.sample_rate, self.target_lufs if normalize else None,
                                source=source)

    def encode(self, wav: Tensor, sample_rate: int, preset: str | None = None, normalize: bool = True) -> Tensor:
        """Encode a waveform.

        Args:
            wav: (T,) or (C, T) one item (channels are averaged), or (B, C, T) a batch of equal-length items,
                each pre-processed on its own (its own loudness gain).
            sample_rate: rate of ``wav`` in Hz (required: tensors carry no rate); it is resampled to the model's.
            preset: a name of :meth:`presets`, an alias (``700bps``) or stages (``"5x5:1,0.25"``).
            normalize: loudness-normalise to ``target_lufs`` (off: keep the level).

        Returns:
            (B, K, S) int64 tokens on the CPU, B = 1 for one item, S = ⌈T' / hop⌉ with T' the resampled length.
        """
        if isinstance(wav, np.ndarray):
            wav = torch.from_numpy(wav)
        if isinstance(wav, Tensor) and wav.dim() == 3:
            batch = torch.stack([self.preprocess(w, sample_rate, normalize) for w in wav])  # (B, 1, T')
        else:
            batch = self.preprocess(wav, sample_rate, normalize).unsqueeze(0)  # (1, 1, T')
        return self._encode(batch, self.resolve_preset(preset))

    def _encode(self, wav: Tensor, preset: str) -> Tensor:  # (B, 1, T) → (B, K, S)
        frames = num_frames(wav.shape[-1], self.hop_length)
        wav = F.pad(wav, (0, frames * self.hop_length - wav.shape[-1]))
        with torch.inference_mode():
            tokens = chunked(lambda w: self.model.encode(w, preset), wav.to(self.device), frames,
                             self.hop_length, 1, self.chunk_frames, self.overlap_frames)
        return tokens.to("cpu", torch.int64)

    def decode(self, tokens: Tensor, preset: str | None = None, num_samples: int | None = None) -> Tensor:
        """Decode tokens to a waveform at :attr:`sample_rate`.

        Args:
            tokens: (B, K, S) or (K, S) integer tokens of ``preset``; checked against its vocabulary
                (``ValueError`` naming stage, item, frame and value).
            preset: as in :meth:`encode`.
            num_samples: crop to this many samples (the encoder's input length); default S · hop.

        Returns:
            (B, T) float32 on the CPU: (1, T) for one item, ready for ``taae.audio.save_audio``.
        """
        name = self.resolve_preset(preset)
        tokens = torch.as_tensor(tokens)
        if not (tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool):
            tokens = tokens.to(torch.int64)  # uint16 / uint32 from disk: few ops exist for those dtypes
        if tokens.dim() == 2:
            tokens = tokens.unsqueeze(0)
        spec = self.presets()[name]
        spec.check_tokens(tokens)
        frames = tokens.shape[-1]
        if num_samples is not None and not 0 < num_samples <= frames * self.hop_length:
            raise ValueError(f"num_samples={num_samples} must be in 1 … {frames * self.hop_length} "
                             f"({frames} frames of {self.hop_length} samples)")
        with torch.inference_mode():
            wav = chunked(lambda t: self.model.decode(t, name), tokens.to(self.device, torch.int64), frames,
                          1, self.hop_length, self.chunk_frames, self.overlap_frames)
        wav = wav[:, 0].to("cpu", torch.float32)  # (B, T)
        return wav if num_samples is None else wav[:, :num_samples]

    def encode_file(self, path: str | os.PathLike, preset: str | None = None, normalize: bool = True) -> TokenFile:
        """Read an audio file (its own sample rate), pre-process it and encode it into a :class:`TokenFile`.

        Raises ``taae.audio.AudioError`` naming the file when it is empty, corrupt or not audio.
        """
        wav, rate = audio.load_audio(path)
        x = self.preprocess(wav, rate, normalize, source=str(path))  # (1, T')
        name = self.resolve_preset(preset)
        tokens = self._encode(x.unsqueeze(0), name)
        return TokenFile(tokens=tokens, preset=name, sample_rate=self.sample_rate, num_samples=x.shape[-1],
                         frame_rate=self.frame_rate, model_hash=self.model_hash,
                         vocab_sizes=self.presets()[name].vocab_sizes)

    def check_token_file(self, tokens: TokenFile, check_hash: bool = True) -> str:
        """Raise ``ValueError`` unless this codec can decode ``tokens``; returns the model's preset name."""
        if tokens.sample_rate != self.sample_rate or not math.isclose(tokens.frame_rate, self.frame_rate):
            raise ValueError(f"token file is at {tokens.sample_rate} Hz / {tokens.frame_rate:g} frames/s but the "
                             f"model runs at {self.sample_rate} Hz / {self.frame_rate:g} frames/s")
        if check_hash and tokens.model_hash != self.model_hash:
            raise ValueError(f"token file was written by model {tokens.model_hash} but this codec's model is "
                             f"{self.model_hash}; decode with the matching checkpoint (or check_hash=False)")
        name = self.resolve_preset(tokens.preset)
        expected = self.presets()[name].vocab_sizes
        if tuple(tokens.vocab_sizes) != tuple(expected):
            raise ValueError(f"token file's preset {tokens.preset!r} has vocab sizes {tokens.vocab_sizes} "
                             f"(K={len(tokens.vocab_sizes)}) but the model's preset {name!r} has {expected} "
                             f"(K={len(expected)})")
        return name

    def decode_file(self, source: str | os.PathLike | TokenFile, check_hash: bool = True) -> Tensor:
        """Decode a token file (path or :class:`TokenFile`) to (1, num_samples) audio at :attr:`sample_rate`."""
        tokens = source if isinstance(source, TokenFile) else TokenFile.load(source)
        name = self.check_token_file(tokens, check_hash)
        return self.decode(tokens.tokens, name, tokens.num_samples)

    # -- reports ---------------------------------------------------------------------------------------------
    def summary(self) -> str:
        """A text report: model, rates, hash and a table of every preset's bitrate."""
        aliases = {v: k for k, v in self.aliases().items()}
        lines = [
            f"model         {type(self.model).__name__} ({self.weights} weights), {self.num_parameters:,} parameters",
            f"sample rate   {self.sample_rate} Hz, frame rate {self.frame_rate:g} Hz, hop {self.hop_length} samples",
            f"model hash    {self.model_hash}",
            "",
            f"{'preset':<18}{'alias':<9}{'tokens/frame':>13}{'vocab':>11}{'bits/frame':>12}{'bps':>8}{'exact bps':>11}",
        ]
        for name, spec in self.presets().items():
            if name in self.aliases():
                continue
            sizes = sorted(set(spec.vocab_sizes))
            vocab = str(sizes[0]) if len(sizes) == 1 else "/".join(str(v) for v in spec.vocab_sizes)
            lines.append(f"{name:<18}{aliases.get(name, ''):<9}{spec.tokens_per_frame:>13}{vocab:>11}"
                         f"{spec.bits_per_frame:>12}{spec.bitrate:>8g}{spec.exact_bitrate:>11.1f}")
        return "\n".join(lines)

"""``Codec``: the inference API. Load a trained codec, encode and decode files and tensors, chunk long inputs.

Shape legend: B batch, C channels, T samples, K tokens per frame, S latent frames.

    file / tensor (C, T) at any rate ─preprocess→ (1, T') at the model's rate, −20 LUFS (gain g dB)
        ─pad to S·hop→ model.encode (chunked) ─→ tokens (1, K, S) int64 ─→ TokenFile (.npz, records g)
    tokens ─model.decode (chunked)→ (1, S·hop) ─crop→ (1, T') ─× 10^(−g/20)→ the input's level

Files and tensors take the same pre-processing (the official API skips it for tensors, §9 item 6).
Checkpoints load strictly and report every missing, unexpected or mis-shaped key (§9 item 8). Long inputs are
processed in overlapping chunks with bounded memory; see :func:`taae.codec.chunking.chunked` for why this is approximate
(§9 item 13). Reading and writing weights (exports, Lightning checkpoints, the weights hash) is in
:mod:`taae.io.export`.

Loading runs no code from the file: a Lightning ``.ckpt`` is read with ``torch.load(weights_only=True)``
(``trust=True`` unpickles fully, for checkpoints you trust) and generators are built from registered codec models only
(:mod:`taae.io.checkpoints`, :mod:`taae.io.registry`). An export (``config.json`` + ``model.safetensors``) never
unpickles.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taae.codec import batching
from taae.codec.chunking import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_FRAMES, chunked
from taae.codec.inference import InferenceOptions, parse_device, prepare
from taae.codec.loading import check_export, find_model, read_model
from taae.io import audio
from taae.io.audio import TARGET_LUFS
from taae.io.export import (
    weights_hash,
    write_export,
)
from taae.io.registry import model_spec
from taae.io.tokens import TokenFile
from taae.models.base import count_parameters, num_frames
from taae.models.interface import SupportsUserPresets, check_codec_model
from taae.quantizers.stages import parse_stages
from taae.quantizers.token_spec import TokenSpec

# -- the codec -------------------------------------------------------------------------------------------------

class Codec:
    """A codec model ready for inference: eval mode, no gradients, one pre-processing path, chunked long inputs.

    Args:
        model: a :class:`taae.models.interface.CodecModel` (TAAE or RVQGAN); anything else is a ``TypeError``.
        device: where the model runs ("cpu" by default; "cuda" raises if CUDA is unavailable).
        chunk_seconds: inputs longer than this run in chunks (None: always whole).
        overlap_frames: latent frames of context on each side of a chunk (see :data:`DEFAULT_OVERLAP_FRAMES`).
        target_lufs: loudness of the pre-processed input.
        spec: the ``{class_path, init_args}`` that rebuilds ``model`` for :meth:`export`; by default derived from
            the model's config dataclass.
        weights: which weights were loaded ("ema", "generator", "export" or "memory"), for reports.
        inference: threads, precision and compilation (:class:`taae.codec.inference.InferenceOptions`; the defaults
            keep the model's numbers).

    Use :meth:`load` for checkpoints and exports.
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu",
                 chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS, overlap_frames: int = DEFAULT_OVERLAP_FRAMES,
                 target_lufs: float = TARGET_LUFS, spec: dict[str, Any] | None = None, weights: str = "memory",
                 inference: InferenceOptions | None = None):
        if chunk_seconds is not None and not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be > 0 or None, got {chunk_seconds}")
        if overlap_frames < 0:
            raise ValueError(f"overlap_frames must be >= 0, got {overlap_frames}")
        check_codec_model(model, "Codec(model)")
        self.device = parse_device(device)
        self.model = model.to(self.device).eval()
        self.chunk_seconds = chunk_seconds
        self.overlap_frames = int(overlap_frames)
        self.target_lufs = target_lufs
        self.spec = spec if spec is not None else model_spec(model)
        self.weights = weights
        self.model_hash = weights_hash(self.model.state_dict())
        self.inference = inference or InferenceOptions()
        self.inference.check_device(self.device)
        self._runner = prepare(self.model, self.inference)  # the model itself unless precision is reduced

    # -- loading and export ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True,
             trust: bool = False, trust_hint: str | None = None, runtime: str = "torch", **kwargs) -> Codec:
        """Load a Lightning checkpoint (``.ckpt``), an exported folder (or its ``config.json``), or released official
        weights: stable-codec's folder (``model_config.json`` + weights) or DAC's ``.pth`` (see ``taae.interop``).
        A hub id ``org/name[@revision]`` that is no local path loads an export or stable-codec release from the
        Hugging Face cache (:mod:`taae.codec.hub`; ``HF_HUB_OFFLINE=1`` is honoured).

        A checkpoint's generator is rebuilt from ``checkpoint["taae"]["generator"]``; its EMA weights
        (``ema.model.*``) are used when present and ``use_ema``, else ``generator.*``. Loading is strict: any
        missing, unexpected or mis-shaped key raises ``ValueError`` listing them. A checkpoint that holds pickled
        objects beyond tensors and plain values is refused (``taae.errors.UntrustedFileError``, whose message ends
        with ``trust_hint``: how the caller's user turns trust on) unless ``trust``; a class path off the registry
        is always refused. ``kwargs`` go to ``Codec``. ``runtime="onnx"`` runs an export's ``onnx/`` folder
        (``taae export --onnx``) in ONNX Runtime (:meth:`use_onnx`).
        """
        if runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
        path = find_model(path)
        loaded = read_model(path, use_ema, trust, trust_hint)
        codec = cls(loaded.model, device=device, spec=loaded.spec, weights=loaded.weights, **kwargs)
        if loaded.export is not None:
            check_export(codec, loaded.export, path)
        if runtime == "onnx":
            if loaded.export is None or not path.is_dir():
                raise ValueError(f"runtime='onnx' needs an export folder with an onnx/ folder (taae export --onnx), "
                                 f"got {path}")
            codec.use_onnx(path / "onnx")
        return codec

    def export(self, folder: str | os.PathLike, training_config: str | os.PathLike | None = None,
               evaluation: str | os.PathLike | None = None, onnx: bool = False) -> Path:
        """Write ``config.json`` (generator spec, rates, hash, version), ``model.safetensors`` and the model card
        ``README.md`` (:mod:`taae.io.model_card`: presets, rates, parameters, architecture, and a summary of
        ``training_config`` (a YAML) and ``evaluation`` (``evaluate.py``'s ``report.md``) when given); with
        ``onnx``, also ``onnx/`` (:mod:`taae.codec.onnx_runtime`: the encoder and decoder for ONNX Runtime).

        The spec is taken from the model's config when it has one, so user presets (kept in the config) travel.
        """
        from taae.io.atomic import write_text
        from taae.io.model_card import CARD_NAME, model_card

        card = model_card(self, training_config, evaluation)  # first: a bad input writes nothing
        folder = write_export(folder, self.model, model_spec(self.model) or self.spec, self.weights, self.model_hash)
        write_text(Path(folder) / CARD_NAME, card)
        if onnx:
            from taae.codec.onnx_runtime import export_onnx

            export_onnx(self.model, self.model_hash, Path(folder) / "onnx")
        return folder

    def use_onnx(self, folder: str | os.PathLike) -> Codec:
        """Run the encoder and decoder from ``folder`` (``taae export --onnx``'s ``onnx/``) in ONNX Runtime, on the
        CPU (CUDA when onnxruntime has it and the codec is on a GPU); the token math stays this codec's. A folder
        exported from other weights or another format version is refused in one line."""
        from taae.codec.onnx_runtime import open_runner

        if self.inference.precision != "fp32":
            raise ValueError(f"runtime 'onnx' runs fp32; got precision={self.inference.precision!r}")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.device.type == "cuda" else None
        threads = self.inference.threads if isinstance(self.inference.threads, int) else None  # a fixed count
        self._runner = open_runner(self.model, self.model_hash, folder, providers, threads)
        return self

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
        """Short names of the model's presets (``700bps`` → ``2x15625_700bps``); token files record the full name."""
        return self.model.aliases()

    def resolve_preset(self, preset: str | None) -> str:
        """The model's full name for ``preset``: a name, an alias, or stages such as ``"5x5:1,0.25"`` (TAAE). The
        model decides (``CodecModel.resolve_preset``); a reduced-precision copy learns a new stage preset too."""
        name = self.model.resolve_preset(preset)
        if self._runner is not self.model and isinstance(self._runner, nn.Module):
            self._runner.resolve_preset(preset)
        return name

    def add_preset(self, name: str, stages, allow_lossy: bool = False) -> TokenSpec:
        """Register post-hoc residual FSQ stages ``[(levels, scale), …]`` (or a :func:`parse_stages` string)."""
        if not isinstance(self.model, SupportsUserPresets):
            raise ValueError(f"{type(self.model).__name__} has no user presets; known: {list(self.presets())}")
        if isinstance(stages, str):
            stages = parse_stages(stages)
        spec = self.model.add_preset(name, stages, allow_lossy=allow_lossy)
        if self._runner is not self.model and isinstance(self._runner, nn.Module):  # an int8 copy needs it too
            self._runner.add_preset(name, stages, allow_lossy=allow_lossy)
        return spec

    # -- encode / decode -------------------------------------------------------------------------------------
    def preprocess(self, wav: Tensor, sample_rate: int, normalize: bool = True, source: str | None = None) -> Tensor:
        """The one pre-processing for files and tensors: (C, T) or (T,) at ``sample_rate`` → (1, T') mono at the
        model's rate, loudness-normalised to ``target_lufs`` unless ``normalize=False``."""
        return self.preprocess_with_gain(wav, sample_rate, normalize, source)[0]

    def preprocess_with_gain(self, wav: Tensor, sample_rate: int, normalize: bool = True,
                             source: str | None = None) -> tuple[Tensor, float]:
        """:meth:`preprocess` and the loudness gain it applied in dB. Input beyond ±1 is scaled with a warning, or
        refused with ``normalize=False`` (the model would see it as it is)."""
        if isinstance(wav, np.ndarray):
            wav = torch.from_numpy(wav)
        return audio.preprocess_with_gain(wav, sample_rate, self.sample_rate, self.target_lufs if normalize else None,
                                          source=source, refuse_beyond_unit=True)

    def encode(self, wav: Tensor | list[Tensor], sample_rate: int, preset: str | None = None, normalize: bool = True,
               lengths: list[int] | Tensor | None = None, batch_seconds: float | None = None) -> Tensor | list[Tensor]:
        """Encode a waveform, a batch of equal-length ones, or items of different lengths.

        Args:
            wav: (T,) or (C, T) one item (channels are averaged), or (B, C, T) a batch of equal-length items,
                each pre-processed on its own (its own loudness gain); or a list of items of any lengths.
            sample_rate: rate of ``wav`` in Hz (required: tensors carry no rate); it is resampled to the model's.
            preset: a name of :meth:`presets`, an alias (``700bps``) or stages (``"5x5:1,0.25"``).
            normalize: loudness-normalise to ``target_lufs`` (off: keep the level).
            lengths: with a padded (B, C, T) batch, each item's length in samples at ``sample_rate``.
            batch_seconds: for a list or ``lengths``: audio per forward (None: no limit).

        Returns:
            (B, K, S) int64 tokens on the CPU, B = 1 for one item, S = ⌈T' / hop⌉ with T' the resampled length.
            For a list or ``lengths``: a list of (1, K, S_i), each exactly item i's own encode whatever its
            neighbours (:mod:`taae.codec.batching`: items of equal frame count share a forward).
        """
        if isinstance(wav, np.ndarray):
            wav = torch.from_numpy(wav)
        if lengths is not None:
            if not (isinstance(wav, Tensor) and wav.dim() == 3):
                shape = tuple(torch.as_tensor(wav).shape)
                raise ValueError(f"lengths need a padded (B, C, T) batch, got shape {shape}")
            wav = batching.split_lengths(wav, lengths, "Codec.encode", "samples")
        if isinstance(wav, (list, tuple)):
            items = [self.preprocess(torch.as_tensor(w), sample_rate, normalize) for w in wav]  # each (1, T_i')
            return batching.encode_items(self, items, self.resolve_preset(preset),
                                         batching.max_frames_of(self, batch_seconds))
        if isinstance(wav, Tensor) and wav.dim() == 3:
            batch = torch.stack([self.preprocess(w, sample_rate, normalize) for w in wav])  # (B, 1, T')
        else:
            batch = self.preprocess(wav, sample_rate, normalize).unsqueeze(0)  # (1, 1, T')
        return self._encode(batch, self.resolve_preset(preset))

    def encode_prepared(self, wav: Tensor, preset: str | None = None) -> Tensor:
        """Encode audio that went through :meth:`preprocess` already: (B, 1, T) at the model's rate → (B, K, S)
        int64 on the CPU (corpus tokenization pre-processes in its loader workers)."""
        return self._encode(wav, self.resolve_preset(preset))

    def _encode(self, wav: Tensor, preset: str) -> Tensor:  # (B, 1, T) → (B, K, S)
        frames = num_frames(wav.shape[-1], self.hop_length)
        wav = F.pad(wav, (0, frames * self.hop_length - wav.shape[-1]))
        with self.inference.context(self.device):
            tokens = chunked(lambda w: self._runner.encode(w, preset), wav.to(self.device), frames,
                             self.hop_length, 1, self.chunk_frames, self.overlap_frames)
        return tokens.to("cpu", torch.int64)

    def decode(self, tokens: Tensor | TokenFile | list[Tensor], preset: str | None = None,
               num_samples: int | list[int] | None = None, keep_level: bool = False,
               lengths: list[int] | Tensor | None = None, batch_seconds: float | None = None) -> Tensor | list[Tensor]:
        """Decode tokens to a waveform at :attr:`sample_rate`.

        Args:
            tokens: (B, K, S) or (K, S) integer tokens of ``preset``; checked against its vocabulary
                (``ValueError`` naming stage, item, frame and value). A :class:`TokenFile` decodes as in
                :meth:`decode_file` (its own preset, length and loudness gain).
            preset: as in :meth:`encode`.
            num_samples: crop to this many samples (the encoder's input length); default S · hop.
            keep_level: for a :class:`TokenFile`, return the coded level (``target_lufs``) instead of the
                input's. Bare tensors carry no gain: they decode at the coded level.
            lengths: with a padded (B, K, S) batch, each item's length in frames (``ValueError`` beyond S).
            batch_seconds: for a list or ``lengths``: audio per forward (None: no limit).

        Returns:
            (B, T) float32 on the CPU: (1, T) for one item, ready for ``taae.io.audio.save_audio``. For a list of
            (K, S_i) or ``lengths``: a list of (1, T_i), T_i = ``num_samples[i]`` (a list then) or S_i · hop.
        """
        if isinstance(tokens, TokenFile):
            return self.decode_file(tokens, keep_level=keep_level)
        if lengths is not None:
            tokens = batching.split_lengths(torch.as_tensor(tokens), lengths, "Codec.decode", "frames")
        if isinstance(tokens, (list, tuple)):
            items = [t[0] if t.dim() == 3 and t.shape[0] == 1 else t for t in map(torch.as_tensor, tokens)]
            crops = list(num_samples) if num_samples is not None else [None] * len(items)
            if len(crops) != len(items):
                raise ValueError(f"Codec.decode: {len(crops)} num_samples for {len(items)} items")
            return batching.decode_items(self, items, self.resolve_preset(preset), crops,
                                         batching.max_frames_of(self, batch_seconds))
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
        with self.inference.context(self.device):
            wav = chunked(lambda t: self._runner.decode(t, name), tokens.to(self.device, torch.int64), frames,
                          1, self.hop_length, self.chunk_frames, self.overlap_frames)
        wav = wav[:, 0].to("cpu", torch.float32)  # (B, T)
        return wav if num_samples is None else wav[:, :num_samples]

    def encode_file(self, path: str | os.PathLike, preset: str | None = None, normalize: bool = True) -> TokenFile:
        """Read an audio file (its own sample rate), pre-process it and encode it into a :class:`TokenFile`.

        Raises ``taae.io.audio.AudioError`` naming the file when it is empty, corrupt or not audio.
        """
        wav, rate = audio.load_audio(path)
        return self.encode_item(wav, rate, preset, normalize, source=str(path))

    def encode_item(self, wav: Tensor, sample_rate: int, preset: str | None = None, normalize: bool = True,
                    source: str | None = None) -> TokenFile:
        """Encode one waveform (T,) or (C, T) into a :class:`TokenFile` that records the loudness gain applied,
        so that :meth:`decode_file` gives the audio back at the level it came in."""
        x, gain_db = self.preprocess_with_gain(wav, sample_rate, normalize, source=source)  # (1, T')
        name = self.resolve_preset(preset)
        tokens = self._encode(x.unsqueeze(0), name)
        return TokenFile(tokens=tokens, preset=name, sample_rate=self.sample_rate, num_samples=x.shape[-1],
                         frame_rate=self.frame_rate, model_hash=self.model_hash,
                         vocab_sizes=self.presets()[name].vocab_sizes, gain_db=gain_db)

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

    def decode_file(self, source: str | os.PathLike | TokenFile, check_hash: bool = True,
                    keep_level: bool = False) -> Tensor:
        """Decode a token file (path or :class:`TokenFile`) to (1, num_samples) audio at :attr:`sample_rate`.

        The loudness gain applied before encoding (``gain_db``) is undone, so the audio comes back at the input's
        level; ``keep_level=True`` returns the coded level (``target_lufs``) instead.
        """
        tokens = source if isinstance(source, TokenFile) else TokenFile.load(source)
        name = self.check_token_file(tokens, check_hash)
        wav = self.decode(tokens.tokens, name, tokens.num_samples)
        return wav if keep_level or tokens.gain_db == 0.0 else wav * tokens.level_gain()

    # -- streaming -------------------------------------------------------------------------------------------
    def streaming(self, batch_size: int = 1, preset: str | None = None):
        """A :class:`taae.codec.streaming.StreamingSession` over this codec's causal model: ``with codec.streaming(B,
        "700bps") as s: tokens = s.encode(chunk); audio = s.decode(tokens)``. Chunks are (B, 1, n·hop) samples at
        :attr:`sample_rate`, already pre-processed (a stream cannot be loudness-normalised ahead of time). With
        ``runtime="onnx"`` the steps run in ONNX Runtime (:mod:`taae.codec.onnx_streaming`)."""
        from taae.codec.streaming import StreamingSession

        if hasattr(type(self._runner), "streaming"):  # OnnxRunner (its __getattr__ reaches the model's names)
            return self._runner.streaming(batch_size, self.resolve_preset(preset))
        return StreamingSession(self.model, batch_size, self.resolve_preset(preset))

    # -- reports ---------------------------------------------------------------------------------------------
    def summary(self) -> str:
        """A text report: model, rates, hash and a table of every preset's bitrate (``taae info``)."""
        from taae.io.model_card import summary_text

        return summary_text(self)

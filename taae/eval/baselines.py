"""The codecs papers compare against, from weights the user already has: EnCodec and Mimi through transformers,
DAC and stable-codec through taae's own import (``taae.interop``).

Shape legend: T samples, K codebooks, S frames.

Every baseline sees the same preprocessed reference as every other row (``inputs.load_reference``) and is scored
against it at the same length. A baseline whose rate differs from the evaluation rate (EnCodec and Mimi run at
24 kHz) is resampled in and out (``torchaudio.functional.resample``); the report says so per row. Output beyond the
input's length is the codec's own frame padding and is cropped; any other change of length is checked by
``System.process``.

A further transformers audio codec is one entry of ``HF_CODECS`` (data, not code): its model class, the keyword that
sets the number of codebooks in ``encode``, the outputs ``decode`` takes, and its default codebook counts.
Bitrates are K × frame rate × log2(codebook size), from the model's own config: Mimi at 5 / 6 / 8 codebooks
is 687.5 / 825 / 1100 bps, EnCodec 24 kHz at 2 codebooks 1.5 kbps.

On the command line a baseline is ``KIND=PATH`` or ``KIND=PATH@SETTINGS`` (``mimi=/models/mimi@5,8``,
``dac=weights_16khz.pth@1q,2q``): SETTINGS are codebook counts for a transformers codec, taae presets for an
imported one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from taae.eval.inputs import content_hash
from taae.eval.systems import System


@dataclass(frozen=True)
class HFCodecSpec:
    """How to drive one transformers audio codec; every field is read from this table, never from code."""

    model_class: str
    """Class in the ``transformers`` namespace that ``from_pretrained`` the folder."""
    quantizer_arg: str
    """Keyword of ``model.encode`` that selects the codebooks."""
    codebooks: tuple[int, ...]
    """Default codebook counts, one row each."""
    arg_is_kbps: bool = False
    """The keyword takes the bitrate in kbps (EnCodec's ``bandwidth``) rather than a codebook count."""
    decode_inputs: tuple[str, ...] = ("audio_codes",)
    """Fields of the encoder output passed to ``model.decode`` by name."""


HF_CODECS: dict[str, HFCodecSpec] = {
    # transformers models/encodec/modeling_encodec.py: encode(bandwidth=kbps), decode(audio_codes, audio_scales)
    "encodec": HFCodecSpec("EncodecModel", "bandwidth", (2,), arg_is_kbps=True,
                           decode_inputs=("audio_codes", "audio_scales")),
    # transformers models/mimi/modeling_mimi.py: encode(num_quantizers=K), decode(audio_codes)
    "mimi": HFCodecSpec("MimiModel", "num_quantizers", (5, 6, 8)),
    # transformers models/dac/modeling_dac.py: encode(n_quantizers=K), decode(audio_codes=...)
    "dac-hf": HFCodecSpec("DacModel", "n_quantizers", (1, 2)),
}
INTEROP_KINDS = {"dac": ("1q", "2q"), "stable-codec": ("400bps", "700bps", "1000bps")}
"""taae-imported baselines and their default presets (DAC 16 kHz at 1 and 2 codebooks)."""


def _resample(wav: Tensor, source: int, target: int) -> Tensor:
    import torchaudio.functional as AF

    return wav if source == target else AF.resample(wav, source, target)


class BaselineSystem(System):
    """A baseline codec run in the main process: resample to ``model_rate``, ``roundtrip``, resample back."""

    kind = "baseline"
    in_worker = False

    def __init__(self, name: str, bitrate: float, model_rate: int, weights: Path, sample_rate: int):
        super().__init__(sample_rate)
        self.name, self.bitrate, self.model_rate = name, float(bitrate), int(model_rate)
        self.weights, self.weights_hash = str(weights), content_hash(weights)

    def roundtrip(self, wav: Tensor) -> Tensor:
        """(1, 1, T') at ``model_rate`` → decoded (1, 1, T'') at ``model_rate``."""
        raise NotImplementedError

    @torch.inference_mode()
    def _process(self, ref: Tensor) -> Tensor:
        x = _resample(ref.reshape(1, 1, -1).float(), self.sample_rate, self.model_rate)
        y = self.roundtrip(x)[..., : x.shape[-1]]  # the codec's own frame padding
        return _resample(y.reshape(1, -1).float(), self.model_rate, self.sample_rate)

    def warmup(self, ref: Tensor) -> None:
        self._process(ref)

    def describe(self) -> str:
        rates = (f"resampled {self.sample_rate}→{self.model_rate}→{self.sample_rate} Hz"
                 if self.model_rate != self.sample_rate else f"run at {self.sample_rate} Hz")
        return f"{self.name}: weights {self.weights} (sha256 {self.weights_hash}), {rates}"


class HFCodecSystem(BaselineSystem):
    """A transformers audio codec at one codebook count (see ``HF_CODECS``)."""

    def __init__(self, kind: str, model, weights: Path, codebooks: int, sample_rate: int):
        spec, cfg = HF_CODECS[kind], model.config
        frame_rate = float(getattr(cfg, "frame_rate", None) or cfg.sampling_rate / cfg.hop_length)
        bitrate = codebooks * frame_rate * math.log2(cfg.codebook_size)
        super().__init__(f"{kind}_{bitrate:g}bps", bitrate, cfg.sampling_rate, weights, sample_rate)
        self.spec, self.model, self.codebooks = spec, model, codebooks
        self.arg = bitrate / 1000 if spec.arg_is_kbps else codebooks
        allowed = getattr(cfg, "target_bandwidths", None)
        if spec.arg_is_kbps and allowed is not None and self.arg not in allowed:
            raise ValueError(f"{weights}: {codebooks} codebooks is {self.arg:g} kbps, not one of the model's "
                             f"target_bandwidths {list(allowed)}")

    def encode(self, wav: Tensor):
        """The model's own encoder output for (1, 1, T') at ``model_rate``."""
        return self.model.encode(wav, **{self.spec.quantizer_arg: self.arg})

    def decode(self, encoded) -> Tensor:
        return self.model.decode(**{k: getattr(encoded, k) for k in self.spec.decode_inputs}).audio_values

    def roundtrip(self, wav: Tensor) -> Tensor:
        device = next(self.model.parameters()).device
        return self.decode(self.encode(wav.to(device))).float().cpu()


class InteropSystem(BaselineSystem):
    """stable-codec or DAC weights imported by ``taae.interop`` and run as a taae ``Codec`` at one preset."""

    def __init__(self, kind: str, codec, weights: Path, preset: str, sample_rate: int):
        resolved = codec.resolve_preset(preset)
        if resolved not in codec.presets():
            raise ValueError(f"{weights}: unknown preset {preset!r}, this {kind} has {list(codec.presets())}")
        spec = codec.presets()[resolved]
        super().__init__(f"{kind}_{preset}", spec.bitrate, codec.sample_rate, weights, sample_rate)
        self.codec, self.preset = codec, resolved

    def roundtrip(self, wav: Tensor) -> Tensor:
        tokens = self.codec.encode(wav.reshape(1, -1), self.model_rate, preset=self.preset, normalize=False)
        return self.codec.decode(tokens, preset=self.preset, num_samples=wav.shape[-1]).reshape(1, 1, -1).cpu()


@dataclass
class BaselineRequest:
    """One ``KIND=PATH[@SETTINGS]`` from the command line."""

    kind: str
    path: Path
    settings: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> BaselineRequest:
        kind, sep, rest = text.partition("=")
        known = [*HF_CODECS, *INTEROP_KINDS]
        if not sep or not rest:
            raise ValueError(f"--baseline {text!r}: expected KIND=PATH[@SETTINGS] with KIND in {known}")
        if kind not in known:
            raise ValueError(f"--baseline {text!r}: unknown kind {kind!r}, known: {known}")
        path, _, settings = rest.partition("@")
        return cls(kind, Path(path), [s.strip() for s in settings.split(",") if s.strip()])


def _load_hf(req: BaselineRequest, device: str):
    import transformers

    if not (req.path / "config.json").is_file():
        raise ValueError(f"--baseline {req.kind}: {req.path}: not a transformers model folder (no config.json)")
    cls = getattr(transformers, HF_CODECS[req.kind].model_class)
    try:
        model = cls.from_pretrained(req.path)
    except Exception as err:  # noqa: BLE001 - any loading failure is one line naming the folder
        raise ValueError(f"--baseline {req.kind}: cannot load {req.path} as {cls.__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    return model.to(device).eval()


def _systems_of(req: BaselineRequest, sample_rate: int, device: str) -> list[BaselineSystem]:
    """The rows of one request. Raises ValueError / FileNotFoundError naming the request and its folder or file."""
    if not req.path.exists():
        raise FileNotFoundError(f"--baseline {req.kind}: {req.path} not found")
    if req.kind in HF_CODECS:
        bad = [k for k in req.settings if not k.isdigit()]
        if bad:
            raise ValueError(f"--baseline {req.kind}: codebook count {bad[0]!r} is not an integer")
        model = _load_hf(req, device)
        return [HFCodecSystem(req.kind, model, req.path, int(k), sample_rate)
                for k in req.settings or HF_CODECS[req.kind].codebooks]
    from taae.codec import Codec

    try:
        codec = Codec.load(req.path, device=device)
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"--baseline {req.kind}: cannot import {req.path}: {err}") from None
    return [InteropSystem(req.kind, codec, req.path, preset, sample_rate)
            for preset in req.settings or INTEROP_KINDS[req.kind]]


def load_baselines(requests: list[str], sample_rate: int, device: str = "cpu") -> tuple[list[BaselineSystem],
                                                                                      list[str]]:
    """Systems for each ``KIND=PATH[@SETTINGS]`` and the report's lines: one per row (weights, hash, resampling),
    and one per request whose folder or file is missing or does not load (its rows are left out, the rest of the
    report is kept).

    Raises:
        ValueError: for a malformed request or an unknown kind (before anything is loaded), or two rows of one name.
    """
    parsed = [BaselineRequest.parse(r) for r in requests]
    systems: list[BaselineSystem] = []
    skipped: list[str] = []
    for req in parsed:
        try:
            systems += _systems_of(req, sample_rate, device)
        except (ValueError, FileNotFoundError) as err:
            skipped.append(f"baseline skipped: {err}")
    names = [s.name for s in systems]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"--baseline: two rows would be named {twice!r}; give each kind one folder")
    return systems, [s.describe() for s in systems] + skipped

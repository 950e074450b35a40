"""The token file: one encoded utterance on disk, as a versioned ``.npz`` (docs/architecture.md, section 2).

Shape legend: K tokens per frame (stages or codebooks), S latent frames.

A :class:`TokenFile` carries everything a decoder needs to check before it trusts the tokens: the preset and its
vocabulary sizes, the sample and frame rates, the number of samples to return (the input was right-padded to whole
frames), and the hash of the model that wrote it. Tokens are stored in the smallest unsigned integer type that
holds every vocabulary (uint8 / uint16 / uint32, int64 beyond 2^32) and always come back as int64.

Arrays in the file (all loadable with ``numpy.load(path, allow_pickle=False)``):

==============  =========================================================================
``format``      the string ``"taae-tokens"``
``version``     int, :data:`FORMAT_VERSION`; newer versions are refused with a clear error
``tokens``      (1, K, S) unsigned integers (see above)
``preset``      str, the preset that made the tokens (e.g. ``2x15625_700bps``)
``vocab_sizes`` (K,) int64, the vocabulary of each token of a frame
``sample_rate`` int, Hz; ``frame_rate`` float, frames per second
``num_samples`` int, samples of the pre-processed input (S = ⌈num_samples / hop⌉)
``model_hash``  str, :attr:`taae.codec.Codec.model_hash` of the encoder's weights
``gain_db``     float, version 2: the loudness gain applied before encoding (dB); decoding divides it out
==============  =========================================================================

Version 2 added ``gain_db`` (DAC's ``.dac`` files keep the input's level, ``input_db``, for the same reason: the
codec works at −20 LUFS, the user's audio was not). Version-1 files read with ``gain_db = 0``: their gain was not
recorded, so they decode at the coded level.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from taae.io.atomic import atomic_write
from taae.quantizers.token_spec import TokenSpec

FORMAT = "taae-tokens"
FORMAT_VERSION = 2
"""Version written by :meth:`TokenFile.save`; :meth:`TokenFile.load` reads versions 1 … FORMAT_VERSION."""

_FIELDS = ("format", "version", "tokens", "preset", "vocab_sizes", "sample_rate", "frame_rate", "num_samples",
           "model_hash")
_FIELDS_SINCE = {"gain_db": 2}
MAX_TOKENS_BYTES = 1 << 30
"""Largest ``tokens`` array :meth:`TokenFile.load` reads (1 GiB: about 44 hours of 8 int64 codebooks at 25 Hz)."""
MAX_FIELD_BYTES = 1 << 16
"""Largest other field (strings, scalars, the vocabulary sizes)."""
"""Fields added by a later version: required from that version on."""


def storage_dtype(vocab_sizes: tuple[int, ...] | list[int]) -> np.dtype:
    """The smallest unsigned type that holds every token of ``vocab_sizes`` (int64 past 2^32)."""
    largest = max(vocab_sizes)
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


@dataclass
class TokenFile:
    """One encoded utterance: tokens plus what is needed to check and decode them.

    Attributes:
        tokens: (1, K, S) int64 tokens.
        preset: name of the preset that produced them.
        sample_rate: the model's sample rate in Hz (audio was resampled to it before encoding).
        num_samples: length of the pre-processed input in samples; decoding crops to it.
        frame_rate: latent frames per second.
        model_hash: hash of the weights that produced the tokens.
        vocab_sizes: vocabulary of each of the K tokens of a frame.
        gain_db: loudness gain applied to the input before encoding, in dB (0: none or not recorded).
        version: file format version.
    """

    tokens: Tensor
    preset: str
    sample_rate: int
    num_samples: int
    frame_rate: float
    model_hash: str
    vocab_sizes: tuple[int, ...]
    gain_db: float = 0.0
    version: int = field(default=FORMAT_VERSION)

    def __post_init__(self):
        self.vocab_sizes = tuple(int(v) for v in self.vocab_sizes)
        if not isinstance(self.tokens, Tensor):
            self.tokens = torch.as_tensor(np.asarray(self.tokens))
        if self.tokens.dtype.is_floating_point or self.tokens.dtype.is_complex or self.tokens.dtype == torch.bool:
            raise TypeError(f"tokens must be an integer tensor, got {self.tokens.dtype}")
        self.tokens = self.tokens.to(torch.int64)
        if self.tokens.dim() != 3 or self.tokens.shape[0] != 1:
            raise ValueError(f"tokens must have shape (1, K, S), got {tuple(self.tokens.shape)}")
        if not self.vocab_sizes or min(self.vocab_sizes) < 1:
            raise ValueError(f"vocab_sizes must be positive, one per token of a frame, got {self.vocab_sizes}")
        self.spec.check_tokens(self.tokens)  # K matches vocab_sizes, every token in range
        if self.sample_rate <= 0 or not (self.frame_rate > 0 and math.isfinite(self.frame_rate)):
            raise ValueError(f"sample_rate and frame_rate must be positive, got {self.sample_rate} and "
                             f"{self.frame_rate}")
        hop = self.sample_rate / self.frame_rate
        frames = self.num_frames
        # The encoder pads the input to whole frames: S = ⌈num_samples / hop⌉.
        if not (frames - 1) * hop < self.num_samples <= frames * hop:
            raise ValueError(
                f"num_samples={self.num_samples} does not fit {frames} frames of {hop:g} samples "
                f"(expected {math.floor((frames - 1) * hop) + 1} … {math.floor(frames * hop)})"
            )
        self.gain_db = float(self.gain_db)
        if not math.isfinite(self.gain_db):
            raise ValueError(f"gain_db must be a finite number of dB, got {self.gain_db}")
        if not isinstance(self.version, int) or not 1 <= self.version <= FORMAT_VERSION:
            raise ValueError(f"unsupported token file version {self.version!r}; this taae reads versions "
                             f"1 … {FORMAT_VERSION}")

    @property
    def spec(self) -> TokenSpec:
        return TokenSpec(self.preset, self.vocab_sizes, float(self.frame_rate))

    @property
    def num_frames(self) -> int:
        return int(self.tokens.shape[-1])

    @property
    def duration(self) -> float:
        """Seconds of audio the tokens decode to."""
        return self.num_samples / self.sample_rate

    def level_gain(self) -> float:
        """The linear factor that gives decoded audio back the level of the input (``10^(−gain_db/20)``)."""
        return 10.0 ** (-self.gain_db / 20.0)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the file atomically (parent folders are created); returns the path. The ``.npz`` suffix is not
        added. A failed write (a full disk) leaves a previous file at ``path`` untouched and raises ``OSError``."""
        path = Path(path)
        tokens = self.tokens.cpu().numpy().astype(storage_dtype(self.vocab_sizes))
        with atomic_write(path) as f:
            np.savez(
                f,
                format=np.str_(FORMAT),
                version=np.int64(FORMAT_VERSION),  # every field of the current version is written
                tokens=tokens,
                preset=np.str_(self.preset),
                vocab_sizes=np.asarray(self.vocab_sizes, dtype=np.int64),
                sample_rate=np.int64(self.sample_rate),
                frame_rate=np.float64(self.frame_rate),
                num_samples=np.int64(self.num_samples),
                model_hash=np.str_(self.model_hash),
                gain_db=np.float64(self.gain_db),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenFile:
        """Read a token file written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a token file, missing fields, a newer format version, or inconsistent contents
                (tokens outside their vocabulary, a length that does not fit the frames).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"token file not found: {path}")
        try:
            arrays = _read_fields(path, (*_FIELDS, *_FIELDS_SINCE))
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
            raise ValueError(f"{path} is not a taae token file (.npz): {err}") from err
        missing = [key for key in _FIELDS if key not in arrays]
        if missing:
            raise ValueError(f"{path} is not a taae token file: missing fields {missing} (expected {list(_FIELDS)})")
        if str(arrays["format"]) != FORMAT:
            raise ValueError(f"{path}: format is {str(arrays['format'])!r}, expected {FORMAT!r}")
        version = int(arrays["version"])
        if not 1 <= version <= FORMAT_VERSION:
            raise ValueError(f"{path}: token file version {version} is not supported; this taae reads versions "
                             f"1 … {FORMAT_VERSION} (upgrade taae to read newer files)")
        missing = [key for key, since in _FIELDS_SINCE.items() if version >= since and key not in arrays]
        if missing:
            raise ValueError(f"{path}: version-{version} token file lacks fields {missing}")
        tokens = arrays["tokens"]
        if tokens.dtype.kind not in "ui":
            raise ValueError(f"{path}: tokens must be integers, got dtype {tokens.dtype}")
        try:
            return cls(
                tokens=torch.from_numpy(tokens.astype(np.int64)),
                preset=str(arrays["preset"]),
                sample_rate=int(arrays["sample_rate"]),
                num_samples=int(arrays["num_samples"]),
                frame_rate=float(arrays["frame_rate"]),
                model_hash=str(arrays["model_hash"]),
                vocab_sizes=tuple(int(v) for v in arrays["vocab_sizes"].reshape(-1)),
                gain_db=float(arrays["gain_db"]) if "gain_db" in arrays else 0.0,
                version=version,
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: invalid token file: {err}") from err


def _read_fields(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The ``names`` members of an ``.npz``, each read only after its header's size is checked against its limit
    and against what the zip entry declares; other members are never decompressed (a zip bomb stays unread)."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist() if name.endswith(".npy")}
        for key in names:
            if key not in members:
                continue
            info = archive.getinfo(members[key])
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(f)
            if dtype.hasobject:
                raise ValueError(f"member {key!r} holds Python objects")
            nbytes = math.prod(int(n) for n in shape) * dtype.itemsize
            limit = MAX_TOKENS_BYTES if key == "tokens" else MAX_FIELD_BYTES
            if nbytes > limit or nbytes > info.file_size:
                raise ValueError(f"member {key!r} claims a {tuple(shape)} {dtype} array ({nbytes:,} bytes), more "
                                 f"than {'its zip entry holds' if nbytes <= limit else f'the limit of {limit:,}'}")
            with archive.open(info) as f:
                arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays

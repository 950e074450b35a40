"""Files, items and their order: the scan that skips unusable files, the crop dataset, the resumable sampler.

Shape legend: T samples (``segment_length``).

Every item goes through :func:`taae.io.audio.preprocess` (mono, resample, loudness), the same path as inference.
Training randomness never touches global RNG state: the shuffled order is drawn from ``(seed, epoch)`` and each
item's crop, loudness target and phase flip from ``(seed, epoch, index)``. A batch is therefore a function of
(seed, epoch, position), whatever the worker count, and :class:`EpochSampler` can skip the batches a resumed run
has already seen.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass

import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from taae.data.files import AudioFile
from taae.data.position import Intervals, Segment, cut, length
from taae.io.audio import TARGET_LUFS, AudioError, normalize_loudness, preprocess

RESAMPLE_MARGIN = 64
"""Extra source frames read on each side of a crop so the resampling filter sees real context at the edges."""
def _mix(*values: int) -> int:
    """A stable 63-bit seed from integers (Python's hash() is salted per process, so not usable in workers)."""
    digest = hashlib.blake2b(":".join(map(str, values)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@dataclass(frozen=True)
class ItemMaker:
    """Turns a file and its three uniform draws into a training/validation/test item: the crop, the loudness
    target and the phase flip. Shared by the folder dataset and the Shar stream, so both make identical items.

    ``mode``: ``"train"`` (crop at a random offset, loudness in target ± range, phase flip), ``"val"`` (centre
    crop, exact target) or ``"test"`` (the whole file, exact target).
    """

    sample_rate: int
    segment_length: int | None
    mode: str = "train"
    loudness_target: float | None = TARGET_LUFS
    loudness_range: float = 0.0
    phase_inversion_prob: float = 0.0

    def __post_init__(self):
        if self.mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {self.mode!r}")

    def __call__(self, f: AudioFile, draws: tuple[float, float, float]) -> Tensor:
        """(1, T): ``segment_length`` samples in train/val mode, the whole file in test mode."""
        u_offset, u_loudness, u_phase = draws
        wav = self.load(f, u_offset)
        target = self.loudness_target
        if target is not None and self.mode == "train":
            target += (2 * u_loudness - 1) * self.loudness_range
        if target is not None:
            wav = normalize_loudness(wav, self.sample_rate, target)
        if self.mode == "train" and u_phase < self.phase_inversion_prob:
            wav = -wav
        if self.segment_length is not None and wav.shape[-1] < self.segment_length:
            wav = torch.nn.functional.pad(wav, (0, self.segment_length - wav.shape[-1]))
        return wav

    def load(self, f: AudioFile, u_offset: float) -> Tensor:
        """Read and resample the crop (train: random offset, val: centre); (1, T) before loudness and padding."""
        ratio = f.sample_rate / self.sample_rate
        length = math.floor(f.frames / ratio)  # file length at the target rate
        if self.segment_length is None or self.mode == "test":
            start, count = 0, length
        else:
            count = min(self.segment_length, length)
            room = length - count
            start = math.floor(u_offset * (room + 1)) if self.mode == "train" else room // 2
        if f.sample_rate == self.sample_rate:
            wav = _read(f, start, start + count)
            wav = preprocess(torch.from_numpy(wav.T.copy()), f.sample_rate, self.sample_rate, None, source=f.path)
        else:
            src_start = max(0, math.floor(start * ratio) - RESAMPLE_MARGIN)
            src_stop = min(f.frames, math.ceil((start + count) * ratio) + RESAMPLE_MARGIN)
            wav = _read(f, src_start, src_stop)
            wav = preprocess(torch.from_numpy(wav.T.copy()), f.sample_rate, self.sample_rate, None, source=f.path)
            lead = round((start * ratio - src_start) / ratio)
            wav = wav[:, lead : lead + count]
        if wav.shape[-1] == 0:
            raise AudioError(f"{f.path}: read 0 frames at offset {start} (file shorter than its header says?)")
        return wav  # (1, T)


def _read(f: AudioFile, start: int, stop: int):
    """Frames [start, stop) as a (frames, C) float32 array, from the file or from its bytes held in memory."""
    source = io.BytesIO(f.data) if f.data is not None else f.path
    wav, _ = sf.read(source, start=start, stop=stop, dtype="float32", always_2d=True)
    return wav


def item_draws(seed: int, epoch: int, index: int) -> tuple[float, float, float]:
    """The crop offset, loudness and phase draws of item ``index`` in ``epoch``: uniform in [0, 1), float64."""
    g = torch.Generator().manual_seed(_mix(seed, epoch, index))
    u_offset, u_loudness, u_phase = torch.rand(3, generator=g, dtype=torch.float64).tolist()
    return u_offset, u_loudness, u_phase


LOAD_ERRORS = (AudioError, OSError, RuntimeError, sf.LibsndfileError)
"""What a file that passed the setup check can still raise when read later (and is then skipped)."""


class AudioDataset(Dataset):
    """Crops of audio files, pre-processed to mono, ``sample_rate`` and a loudness target (see :class:`ItemMaker`).

    Items are keyed ``(index, epoch)`` in ``"train"`` mode (all draws from ``(seed, epoch, index)``) and by
    ``index`` in ``"val"`` and ``"test"`` mode. A file that fails to load is warned about once, flagged in a
    shared-memory mask visible from every worker, and replaced by the next loadable file with the same random draw.
    """

    def __init__(
        self,
        files: list[AudioFile],
        sample_rate: int,
        segment_length: int | None,
        mode: str = "train",
        loudness_target: float | None = TARGET_LUFS,
        loudness_range: float = 0.0,
        phase_inversion_prob: float = 0.0,
        seed: int = 0,
    ):
        self.make = ItemMaker(sample_rate, segment_length, mode, loudness_target, loudness_range,
                              phase_inversion_prob)
        self.files = files
        self.mode = mode
        self.seed = seed
        self.failed = torch.zeros(len(files), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> Tensor:
        """Returns (1, T): ``segment_length`` samples in train/val mode, the whole file in test mode."""
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        draws = item_draws(self.seed, epoch, index)
        for attempt in range(len(self.files)):
            i = (index + attempt) % len(self.files)
            if self.failed[i]:
                continue
            try:
                return self.make(self.files[i], draws)
            except LOAD_ERRORS as e:
                self.failed[i] = True
                warnings.warn(f"skipping {self.files[i].path} (failed while loading: {e})", stacklevel=2)
        raise RuntimeError(f"every one of the {len(self.files)} {self.mode} files failed to load")


class EpochSampler(Sampler):
    """Yields ``(index, epoch)`` keys in an order fixed by ``(seed, epoch)``, sharded by rank, resumable.

    ``len()`` is always the full epoch (Lightning counts the consumed batches itself); only the iteration of the
    resumed epoch starts ``skip_batches`` batches in. The epoch and the skip are read when iteration starts, so
    they may be set after the DataLoader is built.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if num_items < batch_size * num_replicas:
            raise ValueError(
                f"{num_items} training files cannot fill one batch of {batch_size} on each of {num_replicas} "
                "device(s) (drop_last); lower batch_size or add files"
            )
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.skip_epoch = -1
        self.skip_batches = 0
        self.segment: Segment | None = None  # the resumed epoch's items, when it began on another topology

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def resume(self, epoch: int, batches_consumed: int, batches_per_epoch: int | None = None,
               segment: Segment | None = None) -> None:
        """Start the next iteration at batch ``batches_consumed`` of ``epoch`` (the next epoch if it was over).

        ``segment``: that epoch's items for this topology (``taae.data.position``), when it began on another one;
        ``batches_consumed`` then counts from the epoch's start, as Lightning does (at least ``segment.offset``).
        """
        if batches_consumed >= (batches_per_epoch or self.num_batches):
            epoch, batches_consumed, segment = epoch + 1, 0, None
        self.epoch = self.skip_epoch = epoch
        self.skip_batches = batches_consumed
        self.segment = segment

    def base_segment(self) -> Segment:
        """The whole epoch as one segment: the first ``num_batches`` global batches of the shuffled order."""
        return Segment([(0, self.num_batches * self.batch_size * self.num_replicas)], 0)

    def segment_parts(self, segment: Segment) -> tuple[list[int], int]:
        """(the items of ``segment`` this topology reads, in order, all ranks interleaved; batches per rank)."""
        per_global = self.batch_size * self.num_replicas
        batches = min(length(segment.intervals) // per_global, self.num_batches)
        positions = [i for a, b in cut(segment.intervals, 0, batches * per_global) for i in range(a, b)]
        return positions, batches

    def left_after(self, segment: Segment, batches_consumed: int) -> Intervals:
        """What of ``segment`` is left once every rank has taken ``batches_consumed`` batches (epoch count)."""
        taken = (batches_consumed - segment.offset) * self.batch_size * self.num_replicas
        return cut(segment.intervals, taken, length(segment.intervals))

    @property
    def num_batches(self) -> int:
        return self.num_items // (self.batch_size * self.num_replicas)

    @property
    def full_batches(self) -> int:
        """Batches per rank in a whole epoch (Lightning's epoch length)."""
        return self.num_batches

    def segment_batches(self, segment: Segment) -> int:
        """Batches per rank that ``segment`` makes on this topology."""
        return self.segment_parts(segment)[1]

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def __iter__(self):
        epoch = self.epoch
        if self.shuffle:
            order = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(_mix(self.seed, epoch)))
        else:
            order = torch.arange(self.num_items)
        if self.segment is not None and epoch == self.skip_epoch:
            # Every rank's batches are dealt from the segment as from a whole epoch: global batch by global batch.
            positions, _ = self.segment_parts(self.segment)
            order = order[torch.tensor(positions, dtype=torch.long)][self.rank :: self.num_replicas]
            skip = (self.skip_batches - self.segment.offset) * self.batch_size
            for index in order[skip:].tolist():
                yield index, epoch
            return
        order = order[: self.num_batches * self.batch_size * self.num_replicas][self.rank :: self.num_replicas]
        skip = self.skip_batches * self.batch_size if epoch == self.skip_epoch else 0
        for index in order[skip:].tolist():
            yield index, epoch

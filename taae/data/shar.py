"""lhotse Shar data for codec training: the folder module's items, read from shards, split by rank and worker.

Shape legend: B batch, T samples (``segment_length``); R ranks, W loader workers per rank (W = 1 without workers).

A Shar set (lhotse's format: ``cuts.NNNNNN.jsonl.gz`` beside ``recording.NNNNNN.tar``) is read sequentially, shard
by shard, the way it is stored. Items are made by :class:`taae.data.dataset.ItemMaker`, so crops, loudness jitter
and phase flips are those of :class:`~taae.data.AudioDataModule`, and each item's draws come from
``(seed, epoch, index)`` where ``index`` is the cut's position in the whole set (shard offset + position in shard).

Who reads what, in epoch e (a function of (seed, e, R, W), never of timing)::

    shards in order π_e (a permutation drawn from (seed, e); the stored order without shuffle)
    ──concatenate──► one stream of N cuts ──split──► R·W readers, reader g = rank·W + worker
    reader g: stream positions [g·L, (g+1)·L), L = B·⌊N / (R·W·B)⌋   (every reader makes L/B batches)
         ──seeded shuffle buffer (seed, e, g)──► batches of B; rank batch k is reader (k mod W)'s batch ⌊k/W⌋

Splitting the stream rather than whole shards keeps every reader's batch count equal, which DDP needs (a rank
that runs out first would wait for the others forever), and drops fewer than R·W·B cuts an epoch. A reader that
starts inside a shard reads past the cuts before its range without decoding them.

Exact resume: the rank's batch keys come from :class:`~taae.data.dataset.EpochSampler` in the main process
(``(k, epoch)``, resumable), so the folder module's checkpointed position applies unchanged; a worker asked for
batch k opens reader (k mod W) and fast-forwards it to batch ⌊k/W⌋ without decoding. The order depends on
(seed, epoch, R, W, B). Resumed on other counts, the epoch is finished from what its readers had left
(``taae.data.position``): the epoch's sequence is the R·W readers' outputs laid end to end, what is left of it is
dealt afresh to the new readers, each reopening the old readers whose outputs it takes; the data state records
the shard list, and a resume on other shards stops before the first step. Without shuffle, on one device and at most
one worker, batches equal the folder module's on the same files in the same order (``taae prepare`` keeps it).
With shuffle they differ: a Shar set has no random access, so it shuffles shards and a buffer, not all cuts.

A cut that cannot be decoded is warned about and replaced by another cut of its batch with its own draws (the
folder module's rule), so every rank still makes the same number of batches.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from taae.data.datamodule import AudioDataModule
from taae.data.dataset import LOAD_ERRORS, AudioDataset, EpochSampler, ItemMaker, _mix, item_draws
from taae.data.files import AudioFile
from taae.data.position import Intervals, Segment, Topology, cut, length, remaining
from taae.data.shards import Shard, buffer_shuffle, list_shards, read_range, shard_fields
from taae.io.audio import TARGET_LUFS


class SharStream(Dataset):
    """One rank's training batches from a Shar set, keyed ``(k, epoch)`` as :class:`EpochSampler` yields them.

    ``__getitem__`` returns a whole batch (B, 1, T) (use ``DataLoader(batch_size=None)``); see the module
    docstring for who reads what.
    """

    def __init__(self, shards: list[Shard], make: ItemMaker, batch_size: int, seed: int, shuffle: bool,
                 shuffle_buffer: int, num_replicas: int = 1, rank: int = 0, num_workers: int = 0):
        self.shards, self.make, self.batch_size = shards, make, batch_size
        self.seed, self.shuffle, self.shuffle_buffer = seed, shuffle, shuffle_buffer
        self.rank, self.readers_per_rank = rank, max(num_workers, 1)
        self.num_readers = num_replicas * self.readers_per_rank
        self.num_cuts = sum(s.num_cuts for s in shards)
        self.batches_per_reader = self.num_cuts // (self.num_readers * batch_size)
        if self.batches_per_reader == 0:
            raise ValueError(
                f"data.train: {self.num_cuts} cuts cannot fill one batch of {batch_size} for each of "
                f"{self.num_readers} readers ({num_replicas} device(s) × {self.readers_per_rank} worker(s)); "
                "lower data.batch_size or data.num_workers"
            )
        self._readers: dict[int, _Reader] = {}
        self.segment: tuple[int, int, Segment] | None = None
        """(epoch, reader length of the topology that began it, the segment this topology reads) when resumed on
        another topology mid-epoch; that epoch's readers read their parts of the segment."""

    def __len__(self) -> int:
        """Batches of this rank per epoch."""
        return self.batches_per_reader * self.readers_per_rank

    # -- the epoch as a sequence (taae.data.position): reader g's outputs are items [g·L, (g+1)·L) --------------
    @property
    def full_batches(self) -> int:
        return len(self)

    @property
    def reader_length(self) -> int:
        return self.batches_per_reader * self.batch_size

    def base_segment(self) -> Segment:
        return Segment([(0, self.num_readers * self.reader_length)], 0)

    def _part_length(self, segment: Segment) -> int:
        """Items each of this topology's readers takes from ``segment`` (whole batches, as many for everyone)."""
        per_reader = length(segment.intervals) // (self.num_readers * self.batch_size)
        return min(per_reader, self.batches_per_reader) * self.batch_size

    def segment_batches(self, segment: Segment) -> int:
        return self._part_length(segment) // self.batch_size * self.readers_per_rank

    def _parts(self, segment: Segment) -> list[Intervals]:
        size = self._part_length(segment)
        return [cut(segment.intervals, g * size, (g + 1) * size) for g in range(self.num_readers)]

    def left_after(self, segment: Segment, batches_consumed: int) -> Intervals:
        """What of ``segment`` is left once every rank has taken ``batches_consumed`` batches (epoch count)."""
        t, W = batches_consumed - segment.offset, self.readers_per_rank
        taken = [max(0, -(-(t - g % W) // W)) * self.batch_size for g in range(self.num_readers)]
        parts = self._parts(segment)
        tail = cut(segment.intervals, self.num_readers * self._part_length(segment), length(segment.intervals))
        return remaining(parts, taken) + tail

    def __getitem__(self, key: tuple[int, int]) -> Tensor:
        k, epoch = key
        segment = self.segment if self.segment is not None and self.segment[0] == epoch else None
        if segment is not None:
            k -= segment[2].offset  # the segment's batches end with the epoch; its offset is a multiple of W
        w, j = k % self.readers_per_rank, k // self.readers_per_rank
        reader = self._readers.get(w)
        if reader is None or reader.epoch != epoch or reader.next_batch > j:
            g = self.rank * self.readers_per_rank + w
            if segment is None:
                reader = self._open(epoch, g)
            else:
                reader = _Reader(epoch, self._read_part(epoch, segment[1], self._parts(segment[2])[g]))
            self._readers[w] = reader
        while reader.next_batch < j:
            reader.take(self.batch_size)  # fast-forward: read, do not decode
        return self._batch(reader, reader.take(self.batch_size), epoch)

    def _read_part(self, epoch: int, reader_length: int, part: Intervals) -> Iterator:
        """Items ``part`` of an epoch sequence whose readers had ``reader_length`` items each: the readers that
        made them are reopened and fast-forwarded, without decoding."""
        for a, b in part:
            while a < b:
                g, start = divmod(a, reader_length)
                stop = min(b, (g + 1) * reader_length)
                items = self._open(epoch, g, reader_length).items
                for _ in range(start):
                    next(items)
                for _ in range(stop - a):
                    yield next(items)
                a = stop

    def _open(self, epoch: int, g: int, reader_length: int | None = None) -> _Reader:
        order = self.shards
        if self.shuffle:
            perm = torch.randperm(len(order), generator=torch.Generator().manual_seed(_mix(self.seed, "shards", epoch)))
            order = [order[i] for i in perm.tolist()]
        length = reader_length or self.reader_length
        items = read_range(order, g * length, (g + 1) * length)
        if self.shuffle and self.shuffle_buffer > 1:
            items = buffer_shuffle(items, self.shuffle_buffer, random.Random(_mix(self.seed, "buffer", epoch, g)))
        return _Reader(epoch, items)

    def _batch(self, reader: _Reader, items: list[tuple[int, AudioFile | None, str]], epoch: int) -> Tensor:
        good = [f for _, f, _ in items if f is not None] + ([reader.last_good] if reader.last_good else [])
        out = []
        for index, file, name in items:
            draws = item_draws(self.seed, epoch, index)
            # The cut itself, then the batch's other cuts (the folder module's "next loadable file"), then the
            # reader's last good cut (a truncated shard can leave a whole batch unreadable); always its own draws.
            candidates = ([file] if file is not None else []) + [f for f in good if f is not file]
            for candidate in candidates:
                try:
                    out.append(self.make(candidate, draws))
                    reader.last_good = candidate
                    break
                except LOAD_ERRORS as err:
                    warnings.warn(f"skipping {candidate.path} (failed while decoding: {err})", stacklevel=2)
                    good = [f for f in good if f is not candidate]
            else:
                raise RuntimeError(f"no cut of this reader could be decoded so far (first failure: {name})")
        return torch.stack(out)  # (B, 1, T)


class _Reader:
    def __init__(self, epoch: int, items: Iterator):
        self.epoch, self.items, self.next_batch = epoch, items, 0
        self.last_good: AudioFile | None = None

    def take(self, count: int) -> list:
        batch = [next(self.items) for _ in range(count)]
        self.next_batch += 1
        return batch


class SharDataModule(AudioDataModule):
    """lhotse Shar sets -> batches (B, 1, T) of mono crops at ``sample_rate``: the folder module's semantics.

    Args:
        train, val, test: a local Shar directory, or a mapping ``{"cuts": [...], "recording": [...]}`` naming
            every shard (paths, ``pipe:`` commands or URLs as lhotse opens them). ``val``/``test`` cuts are held
            in memory (``max_val_items`` of them for validation); ``None`` disables the split.
        shuffle_buffer: cuts held by each reader's shuffle buffer (their encoded audio stays in memory:
            about ``shuffle_buffer`` × the mean encoded cut size per worker); 1 or less keeps the shard order
            inside each reader's range. The shard order is shuffled every epoch whenever ``shuffle`` is on.

    Every other argument is :class:`~taae.data.AudioDataModule`'s, with the same meaning and default.
    """

    def __init__(self, train: str | dict[str, list[str]], val: str | dict[str, list[str]] | None = None,
                 test: str | dict[str, list[str]] | None = None, sample_rate: int = 16000,
                 segment_length: int = 32000, val_segment_length: int | None = None, batch_size: int = 8,
                 val_batch_size: int | None = None, num_workers: int = 0, loudness_target: float | None = TARGET_LUFS,
                 loudness_range: float = 5.0, phase_inversion_prob: float = 0.5, max_val_items: int | None = 64,
                 seed: int = 0, shuffle: bool = True, shuffle_buffer: int = 256):
        if not isinstance(shuffle_buffer, int) or isinstance(shuffle_buffer, bool) or shuffle_buffer < 0:
            raise ValueError(f"data.shuffle_buffer must be an integer >= 0, got {shuffle_buffer!r}")
        super().__init__(train, val, test, sample_rate, segment_length, val_segment_length, batch_size,
                         val_batch_size, num_workers, loudness_target, loudness_range, phase_inversion_prob,
                         max_val_items, seed, shuffle)
        self.shuffle_buffer = shuffle_buffer
        self._shards: dict[str, list[Shard]] = {}

    def _check_source(self, key: str, value) -> None:
        shard_fields(value, f"data.{key}")  # a missing directory or unpaired shards fail here, before training

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, ("train", "val", "test"))
        for split in wanted:
            source = {"train": self.train_path, "val": self.val_path, "test": self.test_path}[split]
            if source is None or split in self._shards:
                continue
            self._shards[split] = list_shards(source, f"data.{split}")
            if split != "train":
                self.datasets[split] = AudioDataset(
                    self._held_cuts(split), self.sample_rate,
                    segment_length=self.val_segment_length if split == "val" else None, mode=split,
                    loudness_target=self.loudness_target, seed=self.seed)

    def _held_cuts(self, split: str) -> list[AudioFile]:
        """The validation picks (evenly spaced, as the folder module picks files) or every test cut, in memory."""
        shards = self._shards[split]
        total = sum(s.num_cuts for s in shards)
        picks = range(total)
        if split == "val" and self.max_val_items is not None and total > self.max_val_items:
            picks = torch.linspace(0, total - 1, self.max_val_items).round().long().tolist()
        wanted, files = set(picks), []
        for index, file, name in read_range(shards, 0, total):
            if index in wanted:
                if file is None:
                    self._skipped.append((name, "unreadable in its shard"))
                else:
                    files.append(file)
        if not files:
            raise ValueError(f"data.{split}: no readable cuts in {len(shards)} shard(s)")
        return files

    def _train_data(self, world: int, rank: int) -> tuple[Dataset, EpochSampler, dict]:
        if "train" not in self._shards:
            self.setup("fit")
        make = ItemMaker(self.sample_rate, self.segment_length, "train", self.loudness_target, self.loudness_range,
                         self.phase_inversion_prob)
        stream = SharStream(self._shards["train"], make, self.batch_size, self.seed, self.shuffle,
                            self.shuffle_buffer, world, rank, self.num_workers)
        # One key per batch; the stream orders the cuts, so the key sampler itself never shuffles.
        sampler = EpochSampler(len(stream), 1, self.seed, shuffle=False)
        return stream, sampler, {"batch_size": None}

    # -- resume on another topology (taae.data.position) ------------------------------------------------------
    def _stream(self, topology: Topology, rank: int = 0) -> SharStream:
        if "train" not in self._shards:
            self.setup("fit")
        return SharStream(self._shards["train"], None, topology.batch_size, self.seed, self.shuffle,
                          self.shuffle_buffer, topology.world_size, rank, topology.workers)

    def _layout(self, dataset: Dataset, sampler: EpochSampler):
        return dataset

    def _layout_for(self, topology: Topology, base: Topology, segment: Segment | None):
        return self._stream(topology)

    def _activate(self, dataset: Dataset, sampler: EpochSampler, epoch: int, base: Topology,
                  segment: Segment | None, batches: int) -> None:
        # The segment's items are positions in the sequence of the topology that began the epoch.
        dataset.segment = (epoch, self._stream(base).reader_length, segment) if segment is not None else None
        super()._activate(dataset, sampler, epoch, base, None, batches)
        self._active = (epoch, base, segment) if segment is not None else None

    def _data_identity(self) -> dict:
        if "train" not in self._shards:
            self.setup("fit")
        return {"shards": [[Path(s.cuts.split()[-1]).name, s.num_cuts] for s in self._shards["train"]]}

    def _check_same_data(self, state: dict, then: Topology, here: Topology) -> None:
        saved, ours = state.get("shards"), self._data_identity()["shards"]
        if saved is not None and [list(s) for s in saved] != ours:
            raise ValueError(
                f"data.train: the checkpoint's position is in another Shar set ({len(saved)} shards, "
                f"{sum(n for _, n in saved)} cuts, read by {then}) than this one ({len(ours)} shards, "
                f"{sum(n for _, n in ours)} cuts, read by {here}); resume with the same shards, or start the "
                "run afresh from its weights (model.init_weights_from)")

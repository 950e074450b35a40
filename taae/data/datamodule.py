"""Audio data for codec training: a folder or manifest, random crops, loudness jitter, exact resume (§1).

Shape legend: B batch, T samples (``segment_length``).

Every item goes through :func:`taae.io.audio.preprocess` (mono, resample, loudness), the same path as inference.
Training randomness never touches global RNG state: the shuffled order is drawn from ``(seed, epoch)`` and each
item's crop, loudness target and phase flip from ``(seed, epoch, index)``. A batch is therefore a function of
(seed, epoch, position), whatever the worker count, and a run resumed from a mid-epoch checkpoint sees exactly
the batches an uninterrupted run would (:class:`EpochSampler` skips the consumed ones).

The data state records the topology that read it (devices, workers per device, batch size). A run resumed on
another topology finishes the epoch with exactly the items not yet seen, none twice (``taae.data.position``), and
moves Lightning's batch count of the epoch to match; the next epoch is the new topology's own.

Multi-GPU: the sampler shards by rank itself; run the Trainer with ``use_distributed_sampler=False``.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

from pathlib import Path

import lightning
import torch
from torch.utils.data import DataLoader, Dataset

from taae.data.dataset import AudioDataset, EpochSampler
from taae.data.files import AudioFile, scan
from taae.data.position import Segment, Topology
from taae.io.audio import TARGET_LUFS


class AudioDataModule(lightning.LightningDataModule):
    """Folder or manifest of audio files -> batches (B, 1, T) of mono crops at ``sample_rate``.

    Args:
        train: folder searched recursively for .wav/.flac/.ogg, or a manifest: one path per line, or a
            TSV/CSV/JSONL file with a ``path`` column (relative paths resolve against the manifest's folder).
        val: like ``train``; ``None`` disables validation.
        test: like ``train``; ``None`` disables testing. Test batches hold one whole file each (batch size 1).
        sample_rate: model rate in Hz; files are resampled to it.
        segment_length: training crop in samples; shorter files are zero-padded at the end.
        val_segment_length: validation crop in samples (the centre of each file, padded); ``None`` uses
            ``segment_length``.
        batch_size: training batch size (per device); the last incomplete batch is dropped.
        val_batch_size: validation batch size; ``None`` uses ``batch_size``.
        num_workers: DataLoader worker processes (persistent when > 0).
        loudness_target: LUFS target (BS.1770), -20 in the paper's data; ``None`` keeps the file's level.
        loudness_range: training targets are drawn uniformly from target ± range (±5 LU in the paper);
            validation and test use the target exactly.
        phase_inversion_prob: probability of flipping the sign of a training crop (0.5 in the official loader).
        max_val_items: validation uses this many files, evenly spaced over the sorted list; ``None`` uses all.
        seed: seeds the epoch order and every item's crop, loudness target and phase flip.
        shuffle: shuffle the training order every epoch.
    """

    def __init__(
        self,
        train: str,
        val: str | None = None,
        test: str | None = None,
        sample_rate: int = 16000,
        segment_length: int = 32000,
        val_segment_length: int | None = None,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        loudness_target: float | None = TARGET_LUFS,
        loudness_range: float = 5.0,
        phase_inversion_prob: float = 0.5,
        max_val_items: int | None = 64,
        seed: int = 0,
        shuffle: bool = True,
    ):
        super().__init__()
        for key, value in (("train", train), ("val", val), ("test", test)):
            if value is not None:
                self._check_source(key, value)
        positive = {
            "sample_rate": sample_rate,
            "segment_length": segment_length,
            "batch_size": batch_size,
            "val_segment_length": val_segment_length,
            "val_batch_size": val_batch_size,
            "max_val_items": max_val_items,
        }
        for key, value in positive.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"data.{key} must be a positive integer, got {value!r}")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        if not 0.0 <= phase_inversion_prob <= 1.0:
            raise ValueError(f"data.phase_inversion_prob must be in [0, 1], got {phase_inversion_prob}")
        if loudness_range < 0:
            raise ValueError(f"data.loudness_range must be >= 0, got {loudness_range}")
        self.save_hyperparameters()
        self.train_path, self.val_path, self.test_path = train, val, test
        self.sample_rate = sample_rate
        self.segment_length = segment_length
        self.val_segment_length = val_segment_length or segment_length
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.loudness_target = loudness_target
        self.loudness_range = loudness_range
        self.phase_inversion_prob = phase_inversion_prob
        self.max_val_items = max_val_items
        self.seed = seed
        self.shuffle = shuffle
        self.datasets: dict[str, AudioDataset] = {}
        self._skipped: list[tuple[str, str]] = []
        self._scans: dict[str, tuple[list[AudioFile], list[tuple[str, str]]]] = {}
        self._sampler: EpochSampler | None = None
        self._resume: tuple[int, int] | None = None
        self._resume_state: dict | None = None
        self._active: tuple[int, Topology, Segment] | None = None  # (epoch, base topology, segment) being read

    # ---- setup -------------------------------------------------------------------------------------------------

    def _check_source(self, key: str, value) -> None:
        if not Path(value).exists():
            raise FileNotFoundError(f"data.{key}: no such folder or manifest: {value}")

    def prepare_data(self) -> None:
        """Nothing to download: files are checked in :meth:`setup` (which runs on every process)."""

    def setup(self, stage: str | None = None) -> None:
        """Check the files of the splits this stage needs; unusable files are skipped with a warning."""
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, ("train", "val", "test"))
        for split in wanted:
            source = {"train": self.train_path, "val": self.val_path, "test": self.test_path}[split]
            if source is None or split in self.datasets:
                continue
            if source not in self._scans:  # train and val may name the same folder: check and warn once
                self._scans[source] = scan(source, f"data.{split}")
                self._skipped += self._scans[source][1]
            files = self._scans[source][0]
            if split == "val" and self.max_val_items is not None and len(files) > self.max_val_items:
                picks = torch.linspace(0, len(files) - 1, self.max_val_items).round().long().tolist()
                files = [files[i] for i in picks]
            self.datasets[split] = AudioDataset(
                files,
                self.sample_rate,
                segment_length={"train": self.segment_length, "val": self.val_segment_length, "test": None}[split],
                mode=split,
                loudness_target=self.loudness_target,
                loudness_range=self.loudness_range,
                phase_inversion_prob=self.phase_inversion_prob,
                seed=self.seed,
            )

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every file left out: at setup, or after failing to load later (in any worker)."""
        late = [
            (ds.files[i].path, "failed to load after setup")
            for ds in self.datasets.values()
            for i in ds.failed.nonzero().flatten().tolist()
        ]
        return list(dict.fromkeys(self._skipped + late))

    # ---- loaders -----------------------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        trainer = self._trainer_or_none()
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        dataset, sampler, batching = self._train_data(world, rank)
        if trainer is not None:
            # Lightning may start this loader's iterator (and worker prefetch) before calling set_epoch.
            sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed)
        self._sampler = sampler
        if self._resume_state is not None:
            self._place(dataset, sampler, world)
        elif self._resume is not None:
            sampler.resume(*self._resume, batches_per_epoch=self._limited_batches(sampler.num_batches))
        return self._loader(dataset, sampler=sampler, **batching)

    def _topology(self, world: int) -> Topology:
        return Topology(world, self.num_workers, self.batch_size)

    def _layout(self, dataset: Dataset, sampler: EpochSampler):
        """What deals this topology's epoch to its ranks (``base_segment``, ``left_after``, ``segment_batches``)."""
        return sampler

    def _layout_for(self, topology: Topology, base: Topology, segment: Segment | None):
        """The layout of another topology (rank 0: every rank's share of a segment is dealt alike)."""
        dataset = self._dataset("train")
        return EpochSampler(len(dataset), topology.batch_size, self.seed, self.shuffle, topology.world_size, 0)

    def _activate(self, dataset: Dataset, sampler: EpochSampler, epoch: int, base: Topology,
                  segment: Segment | None, batches: int) -> None:
        self._active = (epoch, base, segment) if segment is not None else None
        sampler.resume(epoch, batches, batches_per_epoch=self._limited_batches(sampler.num_batches), segment=segment)

    def _place(self, dataset: Dataset, sampler: EpochSampler, world: int) -> None:
        """Continue the checkpointed epoch on this topology (see the module docstring)."""
        state, here = self._resume_state, self._topology(world)
        epoch, consumed = int(state["epoch"]), int(state["batches_consumed"])
        then = Topology(**state["topology"]) if "topology" in state else here
        base = Topology(**state["base"]) if "base" in state else then
        segment = Segment.from_dict(state["segment"]) if state.get("segment") else None
        self._check_same_data(state, then, here)
        if then == here:
            return self._activate(dataset, sampler, epoch, base, segment, consumed)
        before = self._layout_for(then, base, segment)
        if consumed >= before.full_batches:  # the checkpoint ended its epoch: the next one is this topology's own
            return self._activate(dataset, sampler, epoch + 1, here, None, 0)
        left = before.left_after(segment or before.base_segment(), consumed)
        layout = self._layout(dataset, sampler)
        batches = layout.segment_batches(Segment(left, 0))
        if batches == 0:  # what is left fills no global batch of this topology: dropped, as drop_last drops it
            return self._activate(dataset, sampler, epoch + 1, here, None, 0)
        offset = layout.full_batches - batches
        self._activate(dataset, sampler, epoch, base, Segment(left, offset), offset)
        trainer = self._trainer_or_none()
        if trainer is not None:  # Lightning counts the epoch's batches in this topology's units from here on
            _shift_batch_progress(trainer, offset - consumed)

    def _check_same_data(self, state: dict, then: Topology, here: Topology) -> None:
        """The folder module reads the file list it is given; the Shar module checks its shard list."""

    def _train_data(self, world: int, rank: int) -> tuple[Dataset, EpochSampler, dict]:
        """(dataset, resumable sampler, DataLoader batching arguments) of this rank's training data."""
        dataset = self._dataset("train")
        sampler = EpochSampler(len(dataset), self.batch_size, self.seed, self.shuffle, world, rank)
        return dataset, sampler, {"batch_size": self.batch_size, "drop_last": True}

    def val_dataloader(self) -> DataLoader | list:
        if self.val_path is None:
            return []
        return self._loader(self._dataset("val"), batch_size=self.val_batch_size)

    def test_dataloader(self) -> DataLoader | list:
        """One whole file per batch: (1, 1, T) with T the file's length at ``sample_rate``."""
        if self.test_path is None:
            return []
        return self._loader(self._dataset("test"), batch_size=1)

    def _loader(self, dataset: Dataset, **kwargs) -> DataLoader:
        return DataLoader(
            dataset,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def _dataset(self, split: str) -> AudioDataset:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        return self.datasets[split]

    def _trainer_or_none(self):
        return self.trainer

    def _limited_batches(self, num_batches: int) -> int:
        """The epoch length Lightning will run, given ``Trainer(limit_train_batches=...)``."""
        trainer = self._trainer_or_none()
        limit = getattr(trainer, "limit_train_batches", 1.0) if trainer is not None else 1.0
        if isinstance(limit, int):
            return min(num_batches, limit)
        return int(num_batches * limit) if limit is not None else num_batches

    # ---- exact resume ------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Where the attached trainer stands in the training data, and the topology reading it.

        ``{"epoch", "batches_consumed"}`` (Lightning's count in this epoch), ``"topology"`` (devices, workers per
        device, batch size), ``"base"`` (the topology that began the epoch) and ``"segment"`` (what of the epoch
        this topology reads, when it began on another one; None otherwise).
        """
        trainer = self._trainer_or_none()
        if trainer is None:
            if self._resume_state is not None:
                return dict(self._resume_state)
            epoch, consumed = self._resume or (0, 0)
            return {"epoch": epoch, "batches_consumed": consumed}
        epoch = trainer.fit_loop.epoch_progress.current.completed
        here = self._topology(trainer.world_size)
        active = self._active if self._active is not None and self._active[0] == epoch else None
        return {
            "epoch": epoch,
            # `ready` counts batches fetched in this epoch; `completed` lags by one inside on_train_batch_end.
            "batches_consumed": trainer.fit_loop.epoch_loop.batch_progress.current.ready,
            "topology": here.to_dict(),
            "base": (active[1] if active else here).to_dict(),
            "segment": active[2].to_dict() if active else None,
            **self._data_identity(),
        }

    def _data_identity(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Make the next training iteration continue where :meth:`state_dict` was taken, on any topology.

        Lightning restores the datamodule before it builds the train loader, which places the sampler (and, on a
        new topology, Lightning's batch count); a state without a topology (older checkpoints) resumes as if the
        topology were unchanged.
        """
        self._resume = (int(state_dict["epoch"]), int(state_dict["batches_consumed"]))
        self._resume_state = dict(state_dict)
        if self._sampler is not None:
            self._sampler.resume(*self._resume, batches_per_epoch=self._limited_batches(self._sampler.num_batches))


def _shift_batch_progress(trainer, delta: int) -> None:
    """Move Lightning's batch counters of the running epoch (and its totals) by ``delta`` batches."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    for tracker in (progress.current, progress.total):
        for name in ("ready", "started", "processed", "completed"):
            setattr(tracker, name, max(getattr(tracker, name) + delta, 0))

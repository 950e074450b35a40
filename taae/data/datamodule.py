"""Audio data for codec training: a folder or manifest, random crops, loudness jitter, exact resume (spec §8).

Shape legend: B batch, T samples (``segment_length``).

Every item goes through :func:`taae.audio.preprocess` (mono, resample, loudness), the same path as inference.
Training randomness never touches global RNG state: the shuffled order is drawn from ``(seed, epoch)`` and each
item's crop, loudness target and phase flip from ``(seed, epoch, index)``. A batch is therefore a function of
(seed, epoch, position), whatever the worker count, and a run resumed from a mid-epoch checkpoint sees exactly
the batches an uninterrupted run would (:class:`EpochSampler` skips the consumed ones).

Multi-GPU: the sampler shards by rank itself; run the Trainer with ``use_distributed_sampler=False``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from taae.audio import AudioError, normalize_loudness, preprocess

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
PROBE_FRAMES = 1024
"""Frames read at the start and the end of each file at setup: catches truncated data without a full decode."""
RESAMPLE_MARGIN = 64
"""Extra source frames read on each side of a crop so the resampling filter sees real context at the edges."""
MAX_LISTED_SKIPS = 50


@dataclass(frozen=True)
class AudioFile:
    """A file that passed the setup check."""

    path: str
    frames: int
    sample_rate: int
    channels: int


def _mix(*values: int) -> int:
    """A stable 63-bit seed from integers (Python's hash() is salted per process, so not usable in workers)."""
    digest = hashlib.blake2b(":".join(map(str, values)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def find_audio_files(source: str | Path) -> list[Path]:
    """List the audio files named by a folder (searched recursively), a manifest or a single audio file.

    Manifests: ``.tsv``/``.csv``/``.jsonl`` with a ``path`` column/key, anything else one path per line (blank
    lines and ``#`` comments ignored). Relative paths are resolved against the manifest's folder.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no such folder or manifest: {source}")
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if source.suffix.lower() in AUDIO_SUFFIXES:
        return [source]
    text = source.read_text(encoding="utf-8")
    suffix = source.suffix.lower()
    if suffix in (".tsv", ".csv"):
        rows = list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
        if rows and "path" not in rows[0]:
            raise ValueError(f"manifest {source} has no 'path' column (columns: {list(rows[0])})")
        entries = [row["path"] for row in rows]
    elif suffix == ".jsonl":
        entries = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                record = json.loads(line)
                if "path" not in record:
                    raise ValueError(f"manifest {source} line {n} has no 'path' key: {line[:200]}")
                entries.append(record["path"])
    else:
        entries = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [p if p.is_absolute() else source.parent / p for p in map(Path, (e.strip() for e in entries))]


def check_file(path: Path) -> AudioFile:
    """Header plus a short read at both ends; raises :class:`AudioError` naming the file and the problem."""
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
        if info.frames <= 0:
            raise AudioError(f"{path}: empty (0 frames)")
        with sf.SoundFile(str(path)) as f:
            for start in (0, max(0, info.frames - PROBE_FRAMES)):
                f.seek(start)
                block = f.read(PROBE_FRAMES, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    raise AudioError(f"{path}: no data at frame {start} of {info.frames} (truncated?)")
                if not torch.isfinite(torch.from_numpy(block)).all():
                    raise AudioError(f"{path}: NaN or inf samples")
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        if isinstance(e, AudioError):
            raise
        raise AudioError(f"{path}: unreadable ({e})") from e
    return AudioFile(str(path), int(info.frames), int(info.samplerate), int(info.channels))


def scan(source: str | Path, key: str) -> tuple[list[AudioFile], list[tuple[str, str]]]:
    """Check every file named by ``source``; returns (usable files, [(path, reason)] skipped) and warns once."""
    files, skipped = [], []
    for path in find_audio_files(source):
        try:
            files.append(check_file(path))
        except AudioError as e:
            skipped.append((str(path), str(e).removeprefix(f"{path}: ")))
    if skipped:
        listed = "\n".join(f"  {p}: {why}" for p, why in skipped[:MAX_LISTED_SKIPS])
        more = len(skipped) - MAX_LISTED_SKIPS
        warnings.warn(
            f"{key}={source}: skipping {len(skipped)} unusable audio file(s):\n{listed}"
            + (f"\n  ... and {more} more (see AudioDataModule.skipped)" if more > 0 else ""),
            stacklevel=2,
        )
    if not files:
        raise ValueError(f"{key}={source}: no usable audio files (.wav/.flac/.ogg) found")
    return files, skipped


class AudioDataset(Dataset):
    """Crops of audio files, pre-processed to mono, ``sample_rate`` and a loudness target.

    Items are keyed ``(index, epoch)`` in ``"train"`` mode (random crop, loudness in target ± range, phase flip,
    all drawn from ``(seed, epoch, index)``) and by ``index`` in ``"val"`` mode (centre crop, exact target) and
    ``"test"`` mode (the whole file). A file that fails to load is warned about once, flagged in a shared-memory
    mask visible from every worker, and replaced by the next loadable file with the same random draw.
    """

    def __init__(
        self,
        files: list[AudioFile],
        sample_rate: int,
        segment_length: int | None,
        mode: str = "train",
        loudness_target: float | None = -20.0,
        loudness_range: float = 0.0,
        phase_inversion_prob: float = 0.0,
        seed: int = 0,
    ):
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
        self.files = files
        self.sample_rate = sample_rate
        self.segment_length = segment_length
        self.mode = mode
        self.loudness_target = loudness_target
        self.loudness_range = loudness_range
        self.phase_inversion_prob = phase_inversion_prob
        self.seed = seed
        self.failed = torch.zeros(len(files), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> Tensor:
        """Returns (1, T): ``segment_length`` samples in train/val mode, the whole file in test mode."""
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        g = torch.Generator().manual_seed(_mix(self.seed, epoch, index))
        u_offset, u_loudness, u_phase = torch.rand(3, generator=g, dtype=torch.float64).tolist()
        for attempt in range(len(self.files)):
            i = (index + attempt) % len(self.files)
            if self.failed[i]:
                continue
            try:
                wav = self._load(self.files[i], u_offset)
            except (AudioError, OSError, RuntimeError, sf.LibsndfileError) as e:
                self.failed[i] = True
                warnings.warn(f"skipping {self.files[i].path} (failed while loading: {e})", stacklevel=2)
                continue
            break
        else:
            raise RuntimeError(f"every one of the {len(self.files)} {self.mode} files failed to load")

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

    def _load(self, f: AudioFile, u_offset: float) -> Tensor:
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
            wav, _ = sf.read(f.path, start=start, frames=count, dtype="float32", always_2d=True)
            wav = preprocess(torch.from_numpy(wav.T.copy()), f.sample_rate, self.sample_rate, None, source=f.path)
        else:
            src_start = max(0, math.floor(start * ratio) - RESAMPLE_MARGIN)
            src_stop = min(f.frames, math.ceil((start + count) * ratio) + RESAMPLE_MARGIN)
            wav, _ = sf.read(f.path, start=src_start, stop=src_stop, dtype="float32", always_2d=True)
            wav = preprocess(torch.from_numpy(wav.T.copy()), f.sample_rate, self.sample_rate, None, source=f.path)
            lead = round((start * ratio - src_start) / ratio)
            wav = wav[:, lead : lead + count]
        if wav.shape[-1] == 0:
            raise AudioError(f"{f.path}: read 0 frames at offset {start} (file shorter than its header says?)")
        return wav  # (1, T)


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

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def resume(self, epoch: int, batches_consumed: int, batches_per_epoch: int | None = None) -> None:
        """Start the next iteration at batch ``batches_consumed`` of ``epoch`` (the next epoch if it was over)."""
        if batches_consumed >= (batches_per_epoch or self.num_batches):
            epoch, batches_consumed = epoch + 1, 0
        self.epoch = self.skip_epoch = epoch
        self.skip_batches = batches_consumed

    @property
    def num_batches(self) -> int:
        return self.num_items // (self.batch_size * self.num_replicas)

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def __iter__(self):
        epoch = self.epoch
        if self.shuffle:
            order = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(_mix(self.seed, epoch)))
        else:
            order = torch.arange(self.num_items)
        order = order[: self.num_batches * self.batch_size * self.num_replicas][self.rank :: self.num_replicas]
        skip = self.skip_batches * self.batch_size if epoch == self.skip_epoch else 0
        for index in order[skip:].tolist():
            yield index, epoch


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
        loudness_target: float | None = -20.0,
        loudness_range: float = 5.0,
        phase_inversion_prob: float = 0.5,
        max_val_items: int | None = 64,
        seed: int = 0,
        shuffle: bool = True,
    ):
        super().__init__()
        for key, value in (("train", train), ("val", val), ("test", test)):
            if value is not None and not Path(value).exists():
                raise FileNotFoundError(f"data.{key}: no such folder or manifest: {value}")
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

    # ---- setup -------------------------------------------------------------------------------------------------

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
        dataset = self._dataset("train")
        trainer = self._trainer_or_none()
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = EpochSampler(len(dataset), self.batch_size, self.seed, self.shuffle, world, rank)
        if trainer is not None:
            # Lightning may start this loader's iterator (and worker prefetch) before calling set_epoch.
            sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed)
        self._sampler = sampler
        if self._resume is not None:
            sampler.resume(*self._resume, batches_per_epoch=self._limited_batches(sampler.num_batches))
        return self._loader(dataset, self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_path is None:
            return []
        return self._loader(self._dataset("val"), self.val_batch_size)

    def test_dataloader(self) -> DataLoader | list:
        """One whole file per batch: (1, 1, T) with T the file's length at ``sample_rate``."""
        if self.test_path is None:
            return []
        return self._loader(self._dataset("test"), 1)

    def _loader(self, dataset: Dataset, batch_size: int, **kwargs) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
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

    def state_dict(self) -> dict[str, int]:
        """``{"epoch": e, "batches_consumed": n}``: where the attached trainer stands in the training data."""
        trainer = self._trainer_or_none()
        if trainer is None:
            epoch, consumed = self._resume or (0, 0)
            return {"epoch": epoch, "batches_consumed": consumed}
        return {
            "epoch": trainer.fit_loop.epoch_progress.current.completed,
            # `ready` counts batches fetched in this epoch; `completed` lags by one inside on_train_batch_end.
            "batches_consumed": trainer.fit_loop.epoch_loop.batch_progress.current.ready,
        }

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Make the next training iteration continue where :meth:`state_dict` was taken.

        Lightning restores the datamodule before it builds the train loader; the other order works too, since the
        sampler reads its epoch and skip count only when iteration starts.
        """
        self._resume = (int(state_dict["epoch"]), int(state_dict["batches_consumed"]))
        if self._sampler is not None:
            self._sampler.resume(*self._resume, batches_per_epoch=self._limited_batches(self._sampler.num_batches))

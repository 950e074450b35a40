"""Corpus tokenization as a Lightning ``predict`` job: ``taae tokenize SHAR_IN OUT -c C -p P --devices N``.

Shape legend: T samples, K tokens per frame, S latent frames.

NeMo's pattern (a token field beside the recordings, written by ``predict`` under DDP), in taae's code:

    shards still missing in OUT ──rank r takes shards r, r+R, …; its loader workers split them again──►
    cuts in stored order ─decode, mono, resample, −20 LUFS (the `taae encode` path)─► (1, 1, T)
    ─predict_step: Codec.encode_prepared (one cut per forward: equal to `taae encode` token for token)─► (K, S)
    ─TokenShardWriter: a shard's cuts, once all are in─► one token shard + its summary (atomically)
    ─rank 0, after every rank is done─► manifest.json

A re-run skips the shards whose summary is present; a corrupt cut (or the rest of a truncated tar) is reported
in the summary and skipped; a folder written by another model, preset or format is refused before anything is
touched. Every rank decides which shards are missing before the process group starts, and nothing is written
until every rank has joined it, so all ranks see the same list.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import soundfile as sf
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from taae.codec.batching import encode_items, group_by_frames, max_frames_of
from taae.data.dataset import LOAD_ERRORS
from taae.data.shards import Shard, list_shards, read_range
from taae.io.atomic import check_not_input
from taae.io.audio import preprocess
from taae.jobs.token_shards import (
    TOKEN_FORMATS,
    TokenJob,
    complete_summaries,
    load_manifest,
    write_manifest,
    write_token_shard,
)
from taae.models.base import num_frames


@dataclass
class TokenizeReport:
    """One run: shards found, written now and already complete, and the rebuilt manifest's totals."""

    out: str
    shards: int
    written: int
    already_complete: int
    cuts: int
    skipped: int
    hours: float
    is_global_zero: bool = True
    """False in the extra processes of a multi-device run (their report is rank 0's to print)."""

    def summary(self) -> str:
        return (f"{self.out}: {self.shards} shards ({self.written} written, {self.already_complete} already "
                f"complete), {self.cuts} cuts, {self.hours:.3f} h tokenized, {self.skipped} cuts skipped")


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardCuts(IterableDataset):
    """This rank's (and worker's) share of whole shards, as one item per cut (``None`` audio when unreadable)."""

    def __init__(self, shards: list[tuple[int, Shard]], sample_rate: int, target_lufs: float | None):
        self.shards, self.sample_rate, self.target_lufs = shards, sample_rate, target_lufs

    def _mine(self) -> list[tuple[int, Shard]]:
        rank, world = _rank_and_world()
        mine = self.shards[rank::world]
        worker = get_worker_info()
        return mine[worker.id::worker.num_workers] if worker is not None else mine

    def __len__(self) -> int:
        rank, world = _rank_and_world()
        return sum(max(s.num_cuts, 1) for _, s in self.shards[rank::world])

    def __iter__(self):
        from lhotse.lazy import LazyManifestIterator

        for number, shard in self._mine():
            if shard.num_cuts == 0:
                yield {"shard": number, "count": 0}
                continue
            ids = [cut.id for cut in LazyManifestIterator(shard.cuts)]
            for position, (index, file, name) in enumerate(read_range([shard], 0, shard.num_cuts)):
                item = {"shard": number, "count": shard.num_cuts, "position": position, "cut_id": ids[position],
                        "wav": None,
                        "num_samples": 0, "error": "unreadable in its shard"}
                if file is not None:
                    try:
                        wav, rate = sf.read(io.BytesIO(file.data), dtype="float32", always_2d=True)
                        wav = preprocess(torch.from_numpy(wav.T.copy()), rate, self.sample_rate, self.target_lufs,
                                         source=name)
                        item |= {"wav": wav.unsqueeze(0), "num_samples": wav.shape[-1], "error": None}
                    except LOAD_ERRORS + (ValueError,) as err:
                        # libsndfile names the in-memory stream by its address: keep only the reason, so that
                        # summaries of the same input are identical from run to run.
                        item["error"] = f"undecodable audio ({str(err).rsplit(': ', 1)[-1]})"
                yield item


class BucketedCuts(IterableDataset):
    """``--batch-seconds``: a shard's cuts (as :class:`ShardCuts` yields them) regrouped into lists of cuts with
    equal frame counts, at most ``max_frames`` frames per list (:func:`taae.codec.batching.group_by_frames`); unreadable
    cuts and empty shards pass as one-item lists. Whole shards are buffered: their cuts arrive together."""

    def __init__(self, cuts: ShardCuts, hop_length: int, max_frames: int):
        self.cuts, self.hop_length, self.max_frames = cuts, hop_length, max_frames

    def __len__(self) -> int:
        return len(self.cuts)

    def __iter__(self):
        shard: list[dict] = []
        for item in self.cuts:
            shard.append(item)
            if item.get("count", 0) and item["position"] + 1 < item["count"]:
                continue
            readable = [c for c in shard if c.get("wav") is not None]
            yield from ([c] for c in shard if c.get("wav") is None)
            frames = [num_frames(c["num_samples"], self.hop_length) for c in readable]
            for group in group_by_frames(frames, self.max_frames):
                yield [readable[i] for i in group]
            shard = []


class TokenizerModule(L.LightningModule):
    """Wraps a :class:`taae.codec.Codec` for ``predict``: one cut in, its (K, S) tokens out; or, with
    ``--batch-seconds``, a list of cuts of equal frame counts in, one forward, a list out (the same tokens,
    :mod:`taae.codec.batching`)."""

    def __init__(self, codec, preset: str):
        super().__init__()
        self.codec, self.preset = codec, preset
        self.model = codec.model  # a submodule, so that Lightning moves it to the device

    def on_predict_start(self) -> None:
        self.codec.device = self.device

    def predict_step(self, item: dict | list[dict], batch_idx: int = 0) -> dict | list[dict]:
        if isinstance(item, list):
            readable = [c for c in item if c.get("wav") is not None]
            tokens = encode_items(self.codec, [c["wav"][0] for c in readable], self.preset, None)
            found = {id(c): t[0] for c, t in zip(readable, tokens)}  # (K, S) each
            return [{k: v for k, v in c.items() if k != "wav"} | ({"tokens": found[id(c)]} if id(c) in found else
                    {"tokens": None} if c.get("count") else {}) for c in item]
        out = {k: v for k, v in item.items() if k != "wav"}
        if item.get("wav") is not None:
            out["tokens"] = self.codec.encode_prepared(item["wav"], self.preset)[0]  # (K, S)
        elif item.get("count"):
            out["tokens"] = None
        return out


class TokenShardWriter(BasePredictionWriter):
    """Collects each shard's cuts and writes the shard once all have arrived; rank 0 writes the manifest last."""

    def __init__(self, out: Path, job: TokenJob, shards: dict[int, Shard], source: str, num_shards: int):
        super().__init__(write_interval="batch")
        self.out, self.job, self.shards, self.source, self.num_shards = out, job, shards, source, num_shards
        self.pending: dict[int, list[dict]] = {}
        self.written = 0

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for one in prediction if isinstance(prediction, list) else [prediction]:
            number = one["shard"]
            cuts = self.pending.setdefault(number, [])
            if one["count"]:
                cuts.append(one)
            if len(cuts) == one["count"]:  # batches may come out of stored order: restore it
                cuts = sorted(self.pending.pop(number), key=lambda c: c["position"])
                write_token_shard(self.out, number, self.job, self.shards[number].cuts, cuts)
                self.written += 1

    def on_predict_end(self, trainer, pl_module) -> None:
        if self.pending:
            raise RuntimeError(f"shards {sorted(self.pending)} ended before all their cuts arrived")
        trainer.strategy.barrier("taae-tokenize")
        if trainer.is_global_zero:
            write_manifest(self.out, self.job, self.source, self.num_shards)


def _keep(item):
    """No collation: a cut (a dict) or a list of cuts goes to ``predict_step`` as the dataset yields it."""
    return item


def tokenize(shar_in: str, out: str | os.PathLike, checkpoint: str, preset: str | None = None, devices: int = 1,
             num_nodes: int = 1, accelerator: str = "auto", token_format: str = "npz", num_workers: int = 0,
             normalize: bool = True, progress: bool = True, batch_seconds: float | None = None) -> TokenizeReport:
    """Tokenize every shard of ``shar_in`` into ``out``; see the module docstring. ``batch_seconds``: encode a
    shard's cuts of equal frame counts together, up to that much audio per forward (same tokens, same files).

    Raises:
        FileNotFoundError: no such Shar directory or checkpoint.
        ValueError: a bad argument, a Shar set without cuts, or an ``out`` written by another model, preset or
            format (nothing in ``out`` is changed then).
    """
    from taae.codec import Codec

    if token_format not in TOKEN_FORMATS:
        raise ValueError(f"--format must be one of {list(TOKEN_FORMATS)}, got {token_format!r}")
    for key, value in (("--devices", devices), ("--num-nodes", num_nodes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    if num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {num_workers}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    check_not_input(out, [shar_in])
    shards = list_shards(shar_in, "SHAR_IN")
    codec = Codec.load(checkpoint, trust_hint="export it first (taae export --trust-checkpoint CKPT DIR), then "
                                          "tokenize with the export; taae tokenize never unpickles fully")
    name = codec.resolve_preset(preset)
    job = TokenJob(codec.model_hash, name, tuple(codec.presets()[name].vocab_sizes), codec.frame_rate,
                   codec.sample_rate, token_format, normalize)
    done = complete_summaries(out, job) if out.is_dir() else {}
    todo = [(n, s) for n, s in enumerate(shards) if n not in done]
    source = str(shar_in)
    if todo:
        out.mkdir(parents=True, exist_ok=True)
        writer = TokenShardWriter(out, job, dict(todo), source, len(shards))
        world = devices * num_nodes
        trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes,
                            strategy="ddp" if world > 1 else "auto", precision="32-true", logger=False,
                            callbacks=[writer], enable_checkpointing=False, enable_model_summary=False,
                            enable_progress_bar=progress, use_distributed_sampler=False)
        cuts = ShardCuts(todo, codec.sample_rate, codec.target_lufs if normalize else None)
        if batch_seconds is not None:
            cuts = BucketedCuts(cuts, codec.hop_length, max_frames_of(codec, batch_seconds))
        loader = DataLoader(cuts, batch_size=None, num_workers=num_workers, collate_fn=_keep)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.predict(TokenizerModule(codec, name), dataloaders=loader, return_predictions=False)
        if not trainer.is_global_zero:  # a DDP child: rank 0 wrote the manifest and reports
            return TokenizeReport(str(out), len(shards), writer.written, len(done), 0, 0, 0.0, is_global_zero=False)
    manifest = load_manifest(out) if todo else write_manifest(out, job, source, len(shards))
    return TokenizeReport(str(out), len(shards), manifest["shards_complete"] - len(done), len(done),
                          manifest["cuts"], manifest["skipped"], manifest["hours"])

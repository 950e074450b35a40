"""The worker side of an evaluation (§8): one job per (file, system) pair, scored in a process pool.

Model inference stays in the main process and sends its decoded output with the job; reference codecs travel
with the job and run in the worker. Either way the worker computes the CPU-bound metrics (PESQ, STOI, mel/STFT,
DNSMOS) for the pair. A failure (a system error, a metric error) becomes part of the ``FileResult``, never an
exception. Workers start with ``spawn``, which pickles ``_work`` and ``_init_worker`` by module path, so both
stay top-level functions here.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import torch

from taae.eval.metrics import compute_metrics
from taae.eval.results import FileResult
from taae.eval.systems import System

QUEUE_PER_WORKER = 4
"""Jobs in flight per worker before ``submit`` waits: audio waiting in the queue costs memory."""


@dataclass
class ScoreJob:
    index: int
    file: str
    ref: np.ndarray
    sample_rate: int
    metrics: tuple[str, ...]
    system_name: str
    system: System | None = None
    """Set when the system runs in the worker; else ``out`` holds the main process's output."""
    out: np.ndarray | None = None
    length_change: int = 0
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    keep_audio: bool = False


def _init_worker() -> None:
    # Each worker scores one pair at a time; several torch threads per worker would oversubscribe the cores.
    torch.set_num_threads(1)


def _work(job: ScoreJob) -> tuple[FileResult, np.ndarray | None]:
    ref = torch.from_numpy(job.ref).reshape(1, -1)
    res = FileResult(file=job.file, system=job.system_name, duration=ref.shape[-1] / job.sample_rate,
                     length_change=job.length_change, encode_seconds=job.encode_seconds,
                     decode_seconds=job.decode_seconds, seconds=job.seconds)
    out = None if job.out is None else torch.from_numpy(job.out).reshape(1, -1)
    if job.error is None and job.system is not None:
        try:
            o = job.system.process(ref)
            out, res.length_change, res.seconds = o.audio, o.length_change, o.seconds
        except Exception as err:  # noqa: BLE001 - one file's failure is counted, not fatal
            job.error = f"{type(err).__name__}: {err}"
    if job.error is not None or out is None:
        res.errors["system"] = job.error or "no output"
        res.values = {m: math.nan for m in job.metrics}
        return res, None
    m = compute_metrics(out, ref, job.sample_rate, job.metrics)
    res.values, res.errors = m.values, m.errors
    return res, (out.numpy().reshape(-1) if job.keep_audio else None)


class ScoringPool:
    """Scores jobs in ``workers`` spawned processes, or inline in this process when ``workers`` is 0.

    Each result goes to ``collect(result, audio, index)`` in the main process as soon as it is done, so results
    arrive out of order; ``audio`` is the decoded signal when the job asked to keep it, else None.
    """

    def __init__(self, workers: int, collect: Callable[[FileResult, np.ndarray | None, int], None]):
        self.workers, self.collect = workers, collect
        self.pending: dict[Future, int] = {}  # future -> job index
        self.executor = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker) if workers > 0 else None)

    def submit(self, job: ScoreJob) -> None:
        if self.executor is None:
            self.collect(*_work(job), job.index)
            return
        self.pending[self.executor.submit(_work, job)] = job.index
        while len(self.pending) > QUEUE_PER_WORKER * self.workers:  # bounded queue
            self._drain()

    def join(self) -> None:
        """Wait for every submitted job and collect its result."""
        while self.pending:
            self._drain()

    def shutdown(self) -> None:
        """Stop the workers; jobs not yet started are cancelled."""
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)

    def _drain(self) -> None:
        done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        for fut in done:
            index = self.pending.pop(fut)
            self.collect(*fut.result(), index)

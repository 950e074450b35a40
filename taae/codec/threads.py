"""CPU thread counts that hold up on a busy machine.

PyTorch splits each CPU op over OpenMP threads that meet at a barrier when the op ends. When other processes keep
every core busy, one of those threads is often descheduled and the whole op waits a scheduler time slice for it.
Measured on 2 cores under a load average of ~20 (``benchmarks/cpu_inference.py --threads-check``): a (1, 75, 64)
LayerNorm took 17 µs on 1 thread and 1.3-38 ms on 2, a 1500×768×6144 GEMM ran at 2-10 GFLOP/s on 2 threads
against ~70 per core when the machine was idle. A fixed thread count is therefore wrong either way: the cores
idle on a quiet machine, or every op collapses on a busy one.

``ThreadPolicy("auto")`` measures instead of guessing: a short probe (a GEMM and a few small normalisations, the
two kinds of parallel region a codec runs, about 2 ms of work on one core) is timed at 1 thread, at half and at all
usable cores, and the fastest count wins; more threads must win by ``min_gain`` to be chosen, so a noisy tie goes to
fewer threads. The choice is re-probed after ``reprobe_seconds``, since load changes. Usable cores are the CPUs
this process may run on (``os.sched_getaffinity``), capped by a cgroup CPU quota when one is set.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["ThreadPolicy", "probe_threads", "usable_cpus"]

_PROBE_ROWS, _PROBE_WIDTH, _PROBE_NORMS = 256, 512, 8


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 ``cpu.max`` quota when one is set."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def _probe_once(threads: int, x: torch.Tensor, w: torch.Tensor) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    y = x @ w
    for _ in range(_PROBE_NORMS):
        y = F.layer_norm(y, (_PROBE_WIDTH,))
    return time.perf_counter() - start


def probe_threads(max_threads: int | None = None, reps: int = 5, min_gain: float = 1.15) -> int:
    """The fastest intra-op thread count for this machine right now (see the module docstring).

    Args:
        max_threads: the most threads to consider (default: :func:`usable_cpus`).
        reps: timed runs per candidate (the median counts), after one warm-up run.
        min_gain: how much faster a larger count must be than the best smaller one to be chosen.

    Returns:
        The chosen thread count; torch's own setting is left as it was.
    """
    max_threads = max_threads or usable_cpus()
    candidates = sorted({1, max(1, max_threads // 2), max_threads})
    if candidates == [1]:
        return 1
    before = torch.get_num_threads()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(_PROBE_ROWS, _PROBE_WIDTH, generator=g)
    w = torch.randn(_PROBE_WIDTH, _PROBE_WIDTH, generator=g)
    try:
        with torch.inference_mode():
            best, best_time = 1, math.inf
            for n in candidates:
                _probe_once(n, x, w)
                elapsed = statistics.median(_probe_once(n, x, w) for _ in range(reps))
                if elapsed * min_gain < best_time or n == 1:
                    best, best_time = n, elapsed
    finally:
        torch.set_num_threads(before)
    return best


@dataclass
class ThreadPolicy:
    """How many intra-op threads inference uses.

    Args:
        threads: ``"auto"`` (probe, see :func:`probe_threads`), a fixed count, or None (leave torch's setting).
        reprobe_seconds: how long an ``"auto"`` choice is trusted before it is measured again.
    """

    threads: int | str | None = "auto"
    reprobe_seconds: float = 30.0
    _chosen: int | None = field(default=None, init=False, repr=False)
    _probed_at: float = field(default=-math.inf, init=False, repr=False)

    def __post_init__(self):
        if self.threads is None or self.threads == "auto":
            return
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"threads must be 'auto', None or an int >= 1, got {self.threads!r}")
        if not self.reprobe_seconds > 0:
            raise ValueError(f"reprobe_seconds must be > 0, got {self.reprobe_seconds!r}")

    def count(self) -> int | None:
        """The thread count to use now (None: torch's current setting)."""
        if self.threads != "auto":
            return self.threads
        now = time.monotonic()
        if self._chosen is None or now - self._probed_at > self.reprobe_seconds:
            self._chosen, self._probed_at = probe_threads(), now
        return self._chosen

    @contextmanager
    def applied(self, device: torch.device | str = "cpu"):
        """Run the block with this policy's thread count (CPU work only), restoring torch's setting after."""
        n = self.count() if torch.device(device).type == "cpu" else None
        before = torch.get_num_threads()
        if n is not None and n != before:
            torch.set_num_threads(n)
        try:
            yield n or before
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

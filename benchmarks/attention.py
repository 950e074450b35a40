"""Time and memory of the windowed-attention backends, forward + backward, printed as a Markdown table.

Each row runs one backend at one length N with B = tokens // N sequences (at least 1), so every row processes about
the same number of tokens. A ``full`` row (dense SDPA without a mask, i.e. NOT windowed: a different function) is
the baseline that stable-audio-tools falls back to without flash-attn.

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` minus the allocation before the first call. On CPU, each
(backend, N) runs in a fresh subprocess and reports its peak resident set size (``getrusage`` maxrss) minus its RSS
just before the first call; this includes cached masks, autograd buffers and allocator slack.

Accuracy: the output of batch item 0, head 0 against an independent float64 reference (query blocks against all
keys with an explicit band), the same function as the ``naive`` backend without its O(N²) memory.

Examples:
    python benchmarks/attention.py --device cpu --lengths 1000 4000 16000 --backends full sdpa chunked
    python benchmarks/attention.py --device cuda --dtype bfloat16
    python benchmarks/attention.py --quick

Shapes: B batch, H heads, N tokens, Dh head dim.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

try:
    from taae.nn.attention import available_backends, windowed_attention
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from taae.nn.attention import available_backends, windowed_attention

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _rss_mib() -> float:
    """Current resident set size of this process (Linux), falling back to the peak so far elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return _peak_rss_mib()


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reference_slice(q, k, v, window, block=1024):
    """Float64 windowed attention of batch 0, head 0, one block of queries at a time: (N, Dh)."""
    left, right = window
    q, k, v = (t[0, 0].detach().double() for t in (q, k, v))  # (N, Dh)
    n, dh = q.shape
    keys = torch.arange(n, device=q.device)
    out = torch.empty_like(q)
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n), device=q.device)
        scores = q[rows] @ k.T / math.sqrt(dh)  # (block, N)
        offset = keys[None, :] - rows[:, None]
        scores = scores.masked_fill((offset < -left) | (offset > right), float("-inf"))
        out[rows] = scores.softmax(-1) @ v
    return out


def run_case(backend: str, n: int, args: argparse.Namespace) -> dict:
    """Forward+backward of one backend at length ``n``: median time, peak memory and max abs error."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    b = max(1, args.tokens // n)
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(b, args.heads, n, args.head_dim, generator=g, device=device, dtype=dtype) for _ in range(3))
    grad_out = torch.randn(q.shape, generator=g, device=device, dtype=dtype)
    for t in (q, k, v):
        t.requires_grad_()
    window = tuple(args.window)

    def step(q, k, v, grad_out):
        if backend == "full":
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = windowed_attention(q, k, v, window, backend=backend, chunk_size=args.chunk_size)
        out.backward(grad_out)
        for t in (q, k, v):
            t.grad = None
        return out.detach()

    # Touch the same code paths once at a small size first: the pages of lazily loaded kernels and thread pools
    # count in RSS (~100 MiB) and are not the backend's memory.
    small = [t[:1, :, : min(n, 600)].detach().clone().requires_grad_() for t in (q, k, v)]
    step(*small, grad_out[:1, :, : min(n, 600)])
    del small

    # The first call doubles as warm-up (compilation, mask caches) and as the memory measurement.
    _sync(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _rss_mib()
    start = time.perf_counter()
    out = step(q, k, v, grad_out)
    _sync(device)
    first = time.perf_counter() - start
    if device.type == "cuda":
        mem = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        mem = _peak_rss_mib() - base

    # Slow rows (dense attention at large N) are timed by their first call alone, where one-off setup is noise,
    # so the whole run stays within minutes; the others get a second warm-up and up to --reps timed calls.
    times = [first]
    if first < args.max_seconds:
        step(q, k, v, grad_out)
        reps = max(1, min(args.reps, int(args.max_seconds / max(first, 1e-6))))
        times = []
        for _ in range(reps):
            _sync(device)
            start = time.perf_counter()
            step(q, k, v, grad_out)
            _sync(device)
            times.append(time.perf_counter() - start)

    diff = None
    if not args.no_check:
        ref = _reference_slice(q, k, v, window)
        diff = (out[0, 0].double() - ref).abs().max().item()
    # Every backend must hold its output and the three input gradients; the rest is attention workspace.
    floor = 4 * q.numel() * q.element_size() / 2**20
    ms = 1e3 * statistics.median(times)
    return {"backend": backend, "n": n, "b": b, "ms": ms, "reps": len(times), "mib": mem, "floor": floor, "diff": diff}


def _run_isolated(backend: str, n: int, args: argparse.Namespace) -> dict:
    """Run one case in a fresh interpreter so its peak RSS is its own."""
    worker_args = {**vars(args), "worker": [backend, n]}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker-json", json.dumps(worker_args)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        error = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"backend": backend, "n": n, "b": max(1, args.tokens // n), "error": error}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(row: dict) -> str:
    label = "full (dense, unmasked: NOT windowed)" if row["backend"] == "full" else row["backend"]
    if "error" in row:
        return f"| {label} | {row['n']} | {row['b']} | error: {row['error']} | | | |"
    diff = "—" if row["diff"] is None else f"{row['diff']:.1e}"
    extra = row["mib"] - row["floor"]
    return (
        f"| {label} | {row['n']} | {row['b']} | {row['ms']:.1f} (×{row['reps']}) | {row['mib']:.0f} | {extra:.0f} "
        f"| {diff} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: bfloat16 on CUDA, else float32")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 4000, 16000], help="sequence lengths N")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=16000, help="B·N per row; B = max(1, tokens // N)")
    parser.add_argument("--window", type=int, nargs=2, default=[63, 64], metavar=("LEFT", "RIGHT"))
    parser.add_argument("--backends", nargs="+", default=None, help="default: full + every available backend + auto")
    parser.add_argument("--chunk-size", type=int, default=None, help="query block of the chunked backend")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (fewer when one call is slow)")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time budget for the timed reps of a row")
    parser.add_argument("--no-check", action="store_true", help="skip the float64 accuracy check")
    parser.add_argument("--quick", action="store_true", help="lengths 1000 4000, 4 heads of 64, 2 reps")
    parser.add_argument("--worker-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker_json:
        worker = argparse.Namespace(**json.loads(args.worker_json))
        torch.set_num_threads(worker.threads)
        backend, n = worker.worker
        print(json.dumps(run_case(backend, n, worker)))
        return

    if args.quick:
        args.lengths, args.heads, args.head_dim, args.reps = [1000, 4000], 4, 64, 2
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    args.threads = torch.get_num_threads()
    device = torch.device(args.device)
    backends = args.backends or ["full", *available_backends(device, DTYPES[args.dtype]), "auto"]
    if device.type == "cuda":
        memory = "torch.cuda.max_memory_allocated − allocated before the first call"
        gpu = f" ({torch.cuda.get_device_name(device)})"
    else:
        memory = "peak RSS (getrusage maxrss) − RSS before the first call, one fresh subprocess per row"
        gpu = f" ({args.threads} threads)"

    print(f"# windowed attention, forward + backward on {device}{gpu}, {args.dtype}, torch {torch.__version__}")
    print(f"H={args.heads}, Dh={args.head_dim}, window={tuple(args.window)}, B·N≈{args.tokens}")
    print("time: median over reps after warm-up (a row slower than --max-seconds: its first call, ×1)")
    print(f"memory: {memory}")
    print("beyond out+grads: peak memory minus the output and dq, dk, dv (4·B·H·N·Dh values) every backend holds")
    print("max |Δ|: batch 0, head 0 vs an independent float64 banded reference (the `naive` function)\n")
    print("| backend | N | B | fwd+bwd ms (reps) | peak mem MiB | beyond out+grads MiB | max abs Δ |")
    print("|---|---|---|---|---|---|---|")
    for n in args.lengths:
        for backend in backends:
            if device.type == "cpu":
                row = _run_isolated(backend, n, args)
            else:
                try:
                    row = run_case(backend, n, args)
                except (RuntimeError, ValueError) as err:  # e.g. out of memory for dense rows at large N
                    error = str(err).splitlines()[0]
                    row = {"backend": backend, "n": n, "b": max(1, args.tokens // n), "error": error}
                torch.cuda.empty_cache()
            print(_fmt(row), flush=True)


if __name__ == "__main__":
    main()

"""The prepared GPU suite: one call that brings back every figure, most valuable first, losing nothing it measured.

    bash benchmarks/gpu_suite.sh                                        # on the GPU machine (installs .whl/ first)
    bash benchmarks/gpu_suite.sh --device cpu --quick --out /tmp/suite  # the dry run: every step, tiny sizes, CPU

GPU time comes in 15-minute slots on a machine without network, 1–2 minutes of which start it; one call of this
suite must leave time for a second. So ``PLAN`` below is a fixed list of steps, each with a time cap, whose caps add
up to at most ``BUDGET`` (7 minutes with the wheel install and interpreter start; tests/benchmarks/test_gpu_suite.py
fails otherwise). Steps run in order, each in its own process group (a timeout kills it and its compile workers):

1. correctness: every preset's tokens on CUDA equal the CPU's (TAAE and RVQGAN) and bf16-mixed Lightning steps
   stay finite on CUDA; every attention backend against
   the naive reference in fp32 and bf16; no FlexAttention recompile across 10 new lengths after warm-up;
2. encode+decode speed of the 240 M ladder model at batch 1 and 16 (target: ≥ 1000× real time at batch 16);
3. training step time, audio seconds per second, peak memory and MFU at 25 M and 240 M, bf16-mixed
   (target: MFU ≥ 40% at 240 M);
4. the 950 M model with activation checkpointing (its ladder config) and without it (an overlay turning it off);
5. windowed attention at N = 16 000, bf16, against dense SDPA (target: ≥ 5×);
6. torch.compile of the 25 M training step (the eager figure is step 3's), given its cap plus whatever time the
   steps before it left unused.

Results: ``--out``/results.jsonl gets one JSON line per result the moment it exists (a ``start`` line with the
machine, one line per finished pytest test, per inference row, and per step with its status, seconds and numbers),
so a timeout or a lost connection keeps everything before it. Each step's full output is in ``--out``/logs/. The
dry run (``--device cpu --quick``) runs the same steps through the same scripts at tiny sizes; the tests that need
CUDA itself (the FlexAttention compile) are collected and skipped there, and the compile step uses the
``eager`` backend (dynamo capture and recompiles; inductor on the CPU is tested by tests/models/test_compile.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BUDGET = 400.0
"""Seconds for the steps together: with ~20 s of wheel install and interpreter start, 7 minutes of a 15-minute slot
that spends 1–2 minutes starting the machine, so a second call still fits."""


@dataclass(frozen=True)
class Step:
    """One step of the suite: a command (built per run by ``build``) with its time cap on the GPU machine."""

    name: str
    cap: float
    """Seconds it may take on the GPU machine (estimates in the README's GPU section)."""
    build: Callable[[argparse.Namespace], list[str]]
    extend: bool = False
    """Whether the step may also use the time the steps before it left unused (the last, optional one)."""


# Builders: each returns the command of its step for the run's settings (``args.device``, ``args.quick``).


def _ladder(size: str) -> list[str]:
    return [str(ROOT / "configs/taae/recipe.yaml"), str(ROOT / f"configs/taae/ladder/{size}.yaml")]


def _pytest(*selection: str) -> Callable[[argparse.Namespace], list[str]]:
    # -p suite_report: one JSON line per finished test (benchmarks/suite_report.py); -v: one line per test in the log.
    return lambda args: [PY, "-m", "pytest", *selection, "-v", "-p", "suite_report", "-p", "no:cacheprovider",
                         "-o", "addopts=", "--tb=short", "--capture=sys"]


def _inference(args) -> list[str]:
    size, seconds = ("tiny", "0.5") if args.quick else ("240m", "10")
    return [PY, str(Path(__file__).resolve()), "--inference", "--device", args.device, "--size", size,
            "--seconds", seconds, "--jsonl", str(args.jsonl)]


def _train(size: str, batch: int, checkpointing: bool | None = None,
           compile: bool = False) -> Callable[[argparse.Namespace], list[str]]:
    """train_step.py on recipe + ladder size (tiny.yaml in a dry run); ``checkpointing=False`` overlays it off."""
    def build(args) -> list[str]:
        configs = [str(ROOT / "configs/taae/tiny.yaml"), str(args.out / "micro.yaml")] if args.quick else _ladder(size)
        label = size
        if checkpointing is not None:  # an explicit overlay either way (950m.yaml alone turns it on)
            configs.append(str(args.out / f"checkpointing_{str(checkpointing).lower()}.yaml"))
            label += "_checkpointing" if checkpointing else "_no_checkpointing"
        timed = ["--batch-size", "1", "--seconds", "0.3", "--steps", "1"] if args.quick else \
            ["--batch-size", str(batch), "--seconds", "5", "--steps", "5"]
        flags = []
        if compile:
            label += "_compile"
            # On the CPU inductor's codegen alone would take minutes: the dry run traces with the eager backend.
            flags = ["--compile"] + (["--compile-backend", "eager"] if args.quick else [])
        # bf16-mixed on the CPU too: the dry run takes the autocast path the GPU run takes.
        return [PY, str(ROOT / "benchmarks/train_step.py"), "--config", *configs, "--device", args.device,
                "--precision", "bf16-mixed", *timed,
                "--json", str(args.out / f"train_{label}.json"), *flags]
    return build


def _attention(args) -> list[str]:
    cmd = [PY, str(ROOT / "benchmarks/attention.py"), "--device", args.device, "--max-seconds", "3", "--reps", "3"]
    if args.quick:
        return cmd + ["--lengths", "256", "--tokens", "256", "--heads", "2", "--head-dim", "32", "--reps", "1",
                      "--backends", "full", "chunked", "auto"]
    return cmd + ["--dtype", "bfloat16", "--lengths", "16000", "--backends", "full", "sdpa", "chunked", "auto"]


PLAN: tuple[Step, ...] = (
    Step("tokens: CUDA = CPU, every preset; bf16-mixed steps", 35,
         _pytest("tests/gpu/test_cuda.py", "-k", "every_preset or bf16_mixed")),
    Step("attention backends vs naive, fp32 and bf16", 55, _pytest("tests/nn/test_attention.py", "-m", "gpu")),
    Step("FlexAttention: no recompile across lengths", 45, _pytest("tests/gpu/test_cuda.py", "-k", "recompile")),
    Step("encode+decode 240m, batch 1 and 16", 40, _inference),
    Step("train 25m bf16-mixed", 30, _train("25m", 16)),
    Step("train 240m bf16-mixed", 40, _train("240m", 16)),
    Step("train 950m, activation checkpointing", 55, _train("950m", 8, checkpointing=True)),
    Step("train 950m, no checkpointing", 50, _train("950m", 8, checkpointing=False)),
    Step("windowed attention N=16000 bf16 vs dense", 30, _attention),
    Step("train 25m compiled", 20, _train("25m", 16, compile=True), extend=True),
)


def inference(args) -> None:
    """Encode+decode speed of ``Codec`` at batch 1 and 16 (random weights: speed does not depend on them)."""
    import torch

    from taae.codec import Codec
    from taae.models import from_config

    device = torch.device(args.device)
    torch.manual_seed(0)
    configs = [ROOT / "configs/taae/tiny.yaml"] if args.size == "tiny" else _ladder(args.size)
    codec = Codec(from_config(*configs).eval(), device=device, chunk_seconds=None)
    samples = int(args.seconds * codec.sample_rate)
    for batch in (1, 16):
        wav = 0.1 * torch.randn(batch, samples)
        for preset in ("700bps", "native"):
            def run():
                codec.decode(codec.encode(wav, codec.sample_rate, preset, normalize=False), preset)
                if device.type == "cuda":
                    torch.cuda.synchronize()

            run()  # warm-up
            times = []
            for _ in range(3):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            row = {"size": args.size, "batch": batch, "preset": preset, "audio_seconds": args.seconds,
                   "seconds": seconds, "x_real_time": batch * args.seconds / seconds}
            append(args.jsonl, {"step": "inference", **row})
            print(f"| {args.size} | {batch} | {preset} | {seconds * 1e3:.1f} ms | {row['x_real_time']:.0f}× |",
                  flush=True)


def append(path: Path | str, row: dict) -> None:
    """One JSON line, flushed at once: whatever finished survives a timeout of what follows."""
    with open(path, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def machine(device: str) -> str:
    if device == "cuda":
        try:
            query = "--query-gpu=name,memory.total,driver_version"
            return subprocess.run(["nvidia-smi", query, "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as err:
            return f"nvidia-smi failed: {err}"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (dry run)"


def run_step(cmd: list[str], cap: float, log: Path, env: dict) -> tuple[str, float, float]:
    """Run one step in its own process group, its output streamed to ``log``; kill the group at ``cap`` seconds.

    Returns the status, the wall seconds and the CPU seconds of the step's processes (on a shared CPU, the
    dry run's honest cost).
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status = f"exit {proc.wait(timeout=cap)}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # torch.compile's worker processes go with it
            proc.wait()
            status = f"timed out after {cap:.0f} s"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    return status, time.monotonic() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: the dry run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the dry run's scale)")
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_suite_out"), help="default: $OUT")
    parser.add_argument("--budget", type=float, default=BUDGET, help="seconds for all steps together")
    parser.add_argument("--cap-scale", type=float, default=1.0,
                        help="multiply every step's cap (a dry run on a busy CPU needs more)")
    parser.add_argument("--steps", nargs="*", default=None, help="run only the steps whose names contain these")
    parser.add_argument("--inference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="tiny", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--jsonl", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inference:
        return inference(args)
    if args.budget <= 0 or args.cap_scale <= 0:
        raise ValueError(f"--budget and --cap-scale must be > 0, got {args.budget} and {args.cap_scale}")
    deadline = time.monotonic() + args.budget * args.cap_scale
    args.out = Path(args.out).resolve()
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    args.jsonl = args.out / "results.jsonl"
    # The dry run's training model: tiny.yaml at one block per stage, so a CPU traces and steps it in seconds.
    (args.out / "micro.yaml").write_text("model:\n  init_args:\n    generator:\n      init_args:\n        config:\n"
                                         "          stem_width: 64\n          widths: [64, 64]\n"
                                         "          depths: [1, 1]\n          head_dim: 32\n")
    for flag in ("true", "false"):
        (args.out / f"checkpointing_{flag}.yaml").write_text(
            "model:\n  init_args:\n    generator:\n      init_args:\n        config:\n"
            f"          checkpointing: {flag}\n")
    pythonpath = [str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, pythonpath)), "PYTHONUNBUFFERED": "1",
           # Only the plugins named on the command line: the GPU image's and a dev venv's differ.
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "TAAE_SUITE_JSONL": str(args.jsonl)}
    if args.device == "cpu":
        env["TAAE_GPU_DRY_RUN"] = "1"
    append(args.jsonl, {"event": "start", "machine": machine(args.device), "quick": args.quick,
                        "budget": args.budget, "plan": [[s.name, s.cap] for s in PLAN], "time": time.time()})
    print(f"# taae GPU suite on {machine(args.device)}", flush=True)
    rows = []
    for i, step in enumerate(PLAN):
        if args.steps and not any(s in step.name for s in args.steps):
            continue
        left = deadline - time.monotonic() - 2
        cap = step.cap * args.cap_scale
        cap = max(cap, left) if step.extend else min(cap, left)
        if cap < 5:
            row = {"step": step.name, "status": "skipped: suite budget spent"}
        else:
            env["TAAE_SUITE_STEP"] = step.name
            cmd = step.build(args)
            status, seconds, cpu = run_step(cmd, cap, args.out / "logs" / f"{i:02d}.log", env)
            row = {"step": step.name, "cap": round(cap), "status": status, "seconds": round(seconds, 1),
                   "cpu_seconds": round(cpu, 1), "log": f"logs/{i:02d}.log"}
            numbers = next((Path(c) for c in cmd if c.endswith(".json")), None)
            if numbers is not None and numbers.is_file():
                row["numbers"] = json.loads(numbers.read_text())
        append(args.jsonl, row)
        rows.append(row)
        print(f"{step.name}: {row['status']} ({row.get('seconds', '–')} s)", flush=True)
    print("\n| step | status | seconds | CPU seconds |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['step']} | {row['status']} | {row.get('seconds', '–')} | {row.get('cpu_seconds', '–')} |")
    print(f"\nresults: {args.jsonl}")
    if any(row["status"] != "exit 0" for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""The prepared GPU suite: CUDA tests, then attention, training and inference speed, in one call, on a deadline.

    bash benchmarks/gpu_suite.sh                       # on the GPU machine (installs .whl/ first, writes to $OUT)
    python benchmarks/gpu_suite.py --device cpu --quick --out /tmp/suite   # dry run here, same code paths

Steps, each a subprocess with its own time cap, all inside ``--budget`` seconds (default 450, under the 8 minutes
the issue allows and the device tool's 10-minute command limit):

1. ``pytest -m gpu tests/gpu tests/nn/test_attention.py``: every preset on CUDA equals the CPU (tokens exactly,
   audio ≤ 1e-4), attention backends vs naive in fp32 and bf16, bf16-mixed training steps, no FlexAttention
   recompile across 10 lengths. A dry run sets ``TAAE_GPU_DRY_RUN=1`` (tests/gpu/conftest.py).
2. ``benchmarks/attention.py``: windowed backends vs dense full-attention SDPA at N = 1000 / 4000 / 16000, bf16.
3. ``benchmarks/train_step.py``: bf16-mixed step time, audio s/s, peak memory and MFU per ladder size, eager and
   ``--compile``, with activation checkpointing at the largest size, and the RVQGAN (DAC 16 kHz) config.
4. Inference: ``Codec`` encode+decode real-time factor per preset at batch 1 and 16 (``--inference``, this file).

Writes ``suite.json`` (every step's command, exit status, seconds, parsed numbers) and ``suite.md`` (the machine
and every step's Markdown output) to ``--out``; the last lines printed are the summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TAAE_SIZES = ("25m", "240m", "950m")  # the ladder's ends and the size the targets name
INFERENCE_PRESETS = ("native", "400bps", "700bps", "1000bps")


def ladder(size: str) -> list[str]:
    return [str(ROOT / "configs/taae/recipe.yaml"), str(ROOT / f"configs/taae/ladder/{size}.yaml")]


def plan(args, out: Path) -> list[dict]:
    """The steps to run: name, command, time cap (seconds) and the JSON file a step writes, if any."""
    cpu = args.device == "cpu"
    steps = [{"name": "cuda tests", "cap": 200 if not args.quick else 120,
              "cmd": [PY, "-m", "pytest", "-m", "gpu", "tests/gpu", "tests/nn/test_attention.py", "-q",
                      "-p", "no:warnings", "-p", "no:cacheprovider", "--junitxml", str(out / "pytest.xml")]}]
    attention = [PY, "benchmarks/attention.py", "--device", args.device, "--max-seconds", "4"]
    attention += (["--quick", "--backends", "full", "sdpa", "chunked", "auto"] if cpu or args.quick else
                  ["--dtype", "bfloat16", "--lengths", "1000", "4000", "16000", "--reps", "5"])
    steps.append({"name": "attention", "cmd": attention, "cap": 90})
    train = []
    if args.quick:
        train.append(("tiny", [str(ROOT / "configs/taae/tiny.yaml")], [], 1, 1.0))
    else:
        for size in TAAE_SIZES:
            train.append((size, ladder(size), [], 8, 5.0))
        train.append(("240m compile", ladder("240m"), ["--compile"], 8, 5.0))
        train.append(("950m checkpointing", ladder("950m") + [args.checkpointing_yaml], [], 16, 5.0))
        train.append(("dac16k", [str(ROOT / "configs/rvqgan/dac16k.yaml")], [], 8, 5.0))
    for label, configs, extra, batch, seconds in train:
        path = out / f"train_{label.replace(' ', '_')}.json"
        steps.append({"name": f"train {label}", "cap": 60 if args.quick else 75, "json": path,
                      "cmd": [PY, "benchmarks/train_step.py", "--config", *configs, "--device", args.device,
                              "--batch-size", str(batch), "--seconds", str(seconds), "--steps", "3" if cpu else "5",
                              "--json", str(path), *extra]})
    path = out / "inference.json"
    sizes = ["tiny"] if args.quick else ["tiny", "240m", "950m"]
    steps.append({"name": "inference", "cap": 90, "json": path,
                  "cmd": [PY, str(Path(__file__).resolve()), "--inference", "--device", args.device, "--json",
                          str(path), "--sizes", *sizes, "--seconds", "2" if args.quick else "10"]})
    return steps


def inference(args) -> None:
    """Encode+decode RTF of ``Codec`` per size, preset and batch (random weights; speed does not depend on them)."""
    import torch

    from taae.codec import Codec
    from taae.models import from_config

    device = torch.device(args.device)
    rows = []
    for size in args.sizes:
        torch.manual_seed(0)
        configs = [ROOT / "configs/taae/tiny.yaml"] if size == "tiny" else ladder(size)
        codec = Codec(from_config(*configs).eval(), device=device, chunk_seconds=None)
        samples = int(args.seconds * codec.sample_rate)
        for batch in (1, 16):
            wav = 0.1 * torch.randn(batch, samples)
            for preset in INFERENCE_PRESETS:
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
                rows.append({"size": size, "batch": batch, "preset": preset, "seconds": seconds,
                             "x_real_time": batch * args.seconds / seconds})
                print(f"| {size} | {batch} | {preset} | {seconds * 1e3:.1f} | {rows[-1]['x_real_time']:.0f}× |",
                      flush=True)
        del codec
        if device.type == "cuda":
            torch.cuda.empty_cache()
    Path(args.json).write_text(json.dumps(rows, indent=1))


def machine(device: str) -> str:
    if device == "cuda":
        try:
            return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as err:
            return f"nvidia-smi failed: {err}"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (dry run)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a dry run of the suite")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a dry run's default scale)")
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_suite_out"), help="default: $OUT")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for the whole suite")
    parser.add_argument("--cap-scale", type=float, default=1.0,
                        help="multiply every step's time cap (a dry run on a busy CPU needs more)")
    parser.add_argument("--inference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", nargs="*", default=["tiny"], help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inference:
        return inference(args)
    if args.budget <= 0 or args.cap_scale <= 0:
        raise ValueError(f"--budget and --cap-scale must be > 0, got {args.budget} and {args.cap_scale}")
    deadline = time.monotonic() + args.budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = Path(tempfile.mkdtemp(prefix="gpu_suite_"))
    args.checkpointing_yaml = str(overrides / "checkpointing.yaml")
    Path(args.checkpointing_yaml).write_text(
        "model:\n  init_args:\n    generator:\n      init_args:\n        config:\n          checkpointing: true\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1"}
    if args.device == "cpu":
        env["TAAE_GPU_DRY_RUN"] = "1"
    header = f"# taae GPU suite on {machine(args.device)}{' (quick)' if args.quick else ''}"
    md, results = [header, ""], {"machine": machine(args.device), "quick": args.quick, "steps": []}
    for step in plan(args, out):
        left = deadline - time.monotonic()
        if left < 10:
            results["steps"].append({"name": step["name"], "status": "skipped: suite budget spent"})
            continue
        cap = min(step["cap"] * args.cap_scale, left - 5)
        start = time.monotonic()
        try:
            proc = subprocess.run(step["cmd"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=cap)
            status, text = f"exit {proc.returncode}", proc.stdout + proc.stderr[-3000:]
        except subprocess.TimeoutExpired as err:
            status = f"timed out after {cap:.0f} s"
            text = (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        row = {"name": step["name"], "cmd": " ".join(step["cmd"]), "status": status,
               "seconds": round(time.monotonic() - start, 1)}
        if step.get("json") and Path(step["json"]).is_file():
            row["numbers"] = json.loads(Path(step["json"]).read_text())
        results["steps"].append(row)
        md += [f"## {step['name']}: {status}, {row['seconds']} s", "", "```", text.strip()[-6000:], "```", ""]
        print(f"{step['name']}: {status} ({row['seconds']} s)", flush=True)
    (out / "suite.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "suite.md").write_text("\n".join(md))
    print("\n| step | status | seconds |\n|---|---|---|")
    for row in results["steps"]:
        print(f"| {row['name']} | {row['status']} | {row.get('seconds', '–')} |")


if __name__ == "__main__":
    main()

"""CPU encode+decode speed of taae beside the official code, in one run, with the same weights.

    python benchmarks/cpu_inference.py --official-python /work/venvs/sat20/bin/python \
        [--stable-codec-python /work/venvs/sat17/bin/python] --sizes 240m 950m --dac --seconds 30 --threads 2
    python benchmarks/cpu_inference.py --quality --checkpoint runs/quickstart/checkpoints/last.ckpt
    python benchmarks/cpu_inference.py --threads-check

1. Speed (default). Each TAAE ladder size (configs/taae/recipe.yaml + ladder/SIZE.yaml, random weights, seed 0,
   LayerScale set to 1 so that every transformer layer shapes the output) is written in stable-audio-tools' layout
   (benchmarks/official_layout.py; ``identity_stride1``: no conv at stride-1 stages, as there) and loaded there by
   benchmarks/official_worker.py, run by the official venv's Python. Rows: taae through ``Codec.encode``/``decode``
   (700 bps, loudness normalisation off, no chunking) in fp32, fp32 + torch.compile, int8, and onnx (the same weights
   exported by taae.codec.onnx_runtime and run in ONNX Runtime with the same thread count; its export is not timed);
   stable-audio-tools 0.0.20 with its compiled FlexAttention (its default) and with its chunked-halo fallback; 0.0.17
   (stable-codec's) full attention when its Python is given. ``--dac`` adds configs/rvqgan/recipe.yaml + dac16k.yaml
   against descript-audio-codec 1.0.0. Every row runs once per round, rounds alternate the rows, the median over
   rounds is reported (RTF = seconds / audio seconds); each side's warm-up call (compiles included) is not timed.
   Agreement: relative L2 error of the encoder's latent and of the decoder's output for the same codes, against the
   official model; for taae's rows, the fraction of tokens equal to taae fp32's and, for onnx, the largest |audio −
   taae fp32's| for the same tokens.
2. ``--quality``: fp32 vs int8 vs bf16 at 700 bps on a folder (data/demo/test): token agreement with fp32, and mel
   distance, SI-SDR, PESQ (wb) and STOI of each against the input, means over the files.
3. ``--threads-check``: a LayerNorm and a GEMM at 1 and 2 threads, and what ``threads="auto"`` picks, now.

Output: a Markdown table on stdout, and ``--json`` with every number.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
from codec_speed import speech  # noqa: E402
from official_layout import dac_kwargs, dac_state_dict, sat_config, sat_state_dict  # noqa: E402

from taae.codec import Codec  # noqa: E402
from taae.codec.inference import InferenceOptions  # noqa: E402
from taae.models import _merge, from_config, generator_spec  # noqa: E402
from taae.models.taae import TAAE, TAAEConfig, patch  # noqa: E402

DAC16K = (ROOT / "configs/rvqgan/recipe.yaml", ROOT / "configs/rvqgan/dac16k.yaml")
"""dac16k.yaml is an overlay on the RVQGAN recipe (the generator's class_path is the recipe's)."""
PRESET = "700bps"  # TAAE; the RVQGAN runs all its codebooks ("native"), as DAC's encode does


def preset_of(codec: Codec) -> str:
    return PRESET if PRESET in codec.presets() else "native"


class Official:
    """One official model in its own Python, timed on request (see official_worker.py)."""

    def __init__(self, python: str, folder: Path, kind: str, threads: int, attention: str = "flex"):
        cmd = [python, str(Path(__file__).with_name("official_worker.py")), "--kind", kind, "--folder", str(folder),
               "--threads", str(threads), "--attention", attention]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.folder = folder
        self.info = self._read()

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"official worker exited with {self.proc.wait()}")
            if line.startswith("{"):  # the packages print import notes (flash_attn missing) on stdout
                return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def __call__(self) -> float:
        return self.ask("time")["seconds"]

    def outputs(self) -> dict:
        self.ask("outputs")
        return torch.load(self.folder / "outputs.pt", weights_only=True)

    def close(self) -> None:
        if self.proc.poll() is None:  # "quit" has no answer: the worker just leaves its loop
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    n = min(a.shape[-1], b.shape[-1])
    a, b = a[..., :n].double(), b[..., :n].double()
    return float((a - b).norm() / b.norm())


def ladder_config(size: str) -> TAAEConfig:
    """configs/taae/recipe.yaml + ladder/SIZE.yaml in stable-audio-tools' stage layout, LayerScale 1."""
    spec: dict = {}
    for path in (ROOT / "configs/taae/recipe.yaml", ROOT / f"configs/taae/ladder/{size}.yaml"):
        spec = _merge(spec, yaml.safe_load(path.read_text()) or {})
    values = generator_spec(spec).get("init_args", {})
    return TAAEConfig.from_dict({**values.get("config", values), "identity_stride1": True, "layer_scale_init": 1.0})


def taae_rows(model, wav: torch.Tensor, threads: int, variants: list[str]) -> dict:
    rows = {}
    for name in variants:
        options = InferenceOptions(threads=threads, precision="int8" if name == "int8" else "fp32",
                                   compile=name == "fp32+compile")
        # compile=True compiles the computing model in place: give it its own copy so the other rows stay eager.
        codec = Codec(copy.deepcopy(model) if options.compile else model, chunk_seconds=None, inference=options)
        export_s = None
        if name == "onnx":  # the same weights, exported (not timed) and run in ONNX Runtime at the same threads
            from taae.codec.onnx_runtime import export_onnx

            start = time.perf_counter()
            folder = export_onnx(model, codec.model_hash, tempfile.mkdtemp(prefix="cpu_inference_onnx_"))
            export_s = time.perf_counter() - start
            codec.use_onnx(folder)
            shutil.rmtree(folder)  # the sessions hold the graphs and weights; 0.9 GB at 240 M

        def run(codec=codec):
            start = time.perf_counter()
            preset = preset_of(codec)
            codec.decode(codec.encode(wav, codec.sample_rate, preset, normalize=False), preset)
            return time.perf_counter() - start

        start = time.perf_counter()
        run()  # warm-up (and torch.compile's compile)
        rows[f"taae {name}"] = {"fn": run, "warmup_s": time.perf_counter() - start, "codec": codec,
                                "export_s": export_s}
    return rows


def speed(args) -> dict:
    results = {}
    wav = speech(args.seconds, 16000, ROOT / "data/demo")  # (1, T)
    cases = [(size, "taae") for size in args.sizes] + ([("dac16k", "dac")] if args.dac else [])
    for size, kind in cases:
        torch.manual_seed(0)
        if kind == "taae":
            model = TAAE(ladder_config(size)).eval()
            config, state = sat_config(model.config), sat_state_dict(model)
        else:
            model = from_config(*DAC16K).eval()
            config, state = dac_kwargs(model.config), dac_state_dict(model)
        folder = Path(tempfile.mkdtemp(prefix=f"cpu_inference_{size}_"))
        (folder / "config.json").write_text(json.dumps(config))
        torch.save(state, folder / "weights.pt")
        torch.save(wav.unsqueeze(0), folder / "audio.pt")
        with torch.inference_mode():
            latent = model.encoder(patch(wav.unsqueeze(0), 320)) if kind == "taae" else model.encoder(wav.unsqueeze(0))
            codes = model.quantizer(latent) if kind == "taae" else model.encode(wav.unsqueeze(0))
            decoded = model.decode_codes(codes) if kind == "taae" else model.decode(codes)
        torch.save(codes, folder / "codes.pt")

        variants = ["fp32", "fp32+compile", "int8", "onnx"] if kind == "taae" else ["fp32", "onnx"]
        variants = [v for v in variants if v not in args.skip]
        rows = taae_rows(model, wav, args.threads, variants)
        officials = []
        if kind == "taae":
            for label, python, attention in (("stable-audio-tools 0.0.20 flex", args.official_python, "flex"),
                                             ("stable-audio-tools 0.0.20 chunked", args.official_python, "chunked"),
                                             ("stable-audio-tools 0.0.17 full", args.stable_codec_python, "full")):
                if python and label.split()[-1] not in args.skip:
                    officials.append((label, Official(python, folder, "sat", args.threads, attention)))
        elif args.official_python:
            officials.append(("descript-audio-codec 1.0.0", Official(args.official_python, folder, "dac",
                                                                      args.threads)))
        for label, official in officials:
            out = official.outputs()
            rows[label] = {"fn": official, "agreement": {"latent": rel(latent, out["latent"]),
                                                         "decoded": rel(decoded, out["decoded"])}}
        for name, row in rows.items():
            if "codec" in row:
                preset = preset_of(row["codec"])
                fp32 = rows["taae fp32"]["codec"]
                tokens = fp32.encode(wav, 16000, preset, normalize=False)
                row["agreement"] = {"tokens_vs_fp32": float((row["codec"].encode(wav, 16000, preset, normalize=False)
                                                             == tokens).float().mean())}
                if name == "taae onnx":
                    row["agreement"]["audio_vs_fp32"] = float((row["codec"].decode(tokens, preset)
                                                               - fp32.decode(tokens, preset)).abs().max())
        times = {name: [] for name in rows}
        for _ in range(args.rounds):
            for name, row in rows.items():
                times[name].append(row["fn"]())
        for _, official in officials:
            official.close()
        results[size] = {name: {"seconds": statistics.median(t), "rtf": statistics.median(t) / args.seconds,
                                "all_seconds": t, "agreement": rows[name].get("agreement"),
                                "warmup_s": rows[name].get("warmup_s"), "export_s": rows[name].get("export_s")}
                         for name, t in times.items()}
    return results


def print_speed(results: dict, args) -> None:
    try:
        import onnxruntime

        ort = f", onnxruntime {onnxruntime.__version__}"
    except ImportError:
        ort = ""
    print(f"\n{args.seconds:g} s of speech, {args.threads} threads, fp32 unless named, median of {args.rounds} "
          f"alternating rounds; torch {torch.__version__}{ort}; load average {os.getloadavg()[0]:.1f} at the end")
    print("| model | implementation | RTF | × vs first official row | agreement (rel. L2) |\n|---|---|---|---|---|")
    for size, rows in results.items():
        base = next((r["rtf"] for name, r in rows.items() if not name.startswith("taae")), None)
        for name, r in rows.items():
            vs = f"{base / r['rtf']:.2f}×" if base else "–"
            agree = ", ".join(f"{k} {v:.1e}" if v < 0.01 else f"{k} {v:.3f}" for k, v in (r["agreement"] or {}).items())
            print(f"| {size} | {name} | {r['rtf']:.3f} | {vs} | {agree} |")


def quality(args) -> dict:
    from taae.eval.metrics import mel_distance, pesq_score, si_sdr, stoi_score
    from taae.io.audio import load_audio

    files = sorted(Path(args.data).glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"no .wav files in {args.data}")
    codecs = {p: Codec.load(args.checkpoint, inference=InferenceOptions(threads=args.threads, precision=p))
              for p in ("fp32", "int8", "bf16")}
    sums = {p: {"agree": 0.0, "mel": 0.0, "si_sdr": 0.0, "pesq_wb": 0.0, "stoi": 0.0, "seconds": 0.0} for p in codecs}
    audio_seconds = 0.0
    for path in files:
        wav, rate = load_audio(path)
        ref = codecs["fp32"].preprocess(wav, rate)  # (1, T) at 16 kHz, −20 LUFS
        audio_seconds += ref.shape[-1] / 16000
        tokens = {}
        for p, codec in codecs.items():
            start = time.perf_counter()
            tokens[p] = codec.encode(ref, 16000, PRESET, normalize=False)
            out = codec.decode(tokens[p], PRESET, num_samples=ref.shape[-1])
            s = sums[p]
            s["seconds"] += time.perf_counter() - start
            s["agree"] += float((tokens[p] == tokens["fp32"]).float().mean())
            s["mel"] += mel_distance(out, ref, 16000)
            s["si_sdr"] += float(si_sdr(out, ref))
            s["pesq_wb"] += pesq_score(out, ref, 16000)
            s["stoi"] += stoi_score(out, ref, 16000)
    means = {p: {k: (v / audio_seconds if k == "seconds" else v / len(files)) for k, v in s.items()}
             for p, s in sums.items()}
    print(f"\n{args.checkpoint}, {len(files)} files of {args.data} ({audio_seconds:.0f} s), {PRESET}, "
          f"{args.threads} threads")
    print("| precision | tokens = fp32 | mel ↓ | SI-SDR ↑ | PESQ wb ↑ | STOI ↑ | RTF |\n|---|---|---|---|---|---|---|")
    for p, m in means.items():
        print(f"| {p} | {100 * m['agree']:.1f}% | {m['mel']:.3f} | {m['si_sdr']:.2f} | {m['pesq_wb']:.3f} | "
              f"{m['stoi']:.3f} | {m['seconds']:.4f} |")
    return means


def threads_check(args) -> dict:
    from taae.codec.threads import probe_threads

    x, ln = torch.randn(1, 75, 64), torch.nn.LayerNorm(64)
    a, w = torch.randn(1500, 768), torch.randn(768, 6144)
    out = {}
    with torch.inference_mode():
        for n in (1, 2, 1, 2):
            torch.set_num_threads(n)
            ln(x), a @ w
            start = time.perf_counter()
            for _ in range(200):
                ln(x)
            norm = (time.perf_counter() - start) / 200
            start = time.perf_counter()
            a @ w
            gemm = time.perf_counter() - start
            gflops = 2 * 1500 * 768 * 6144 / gemm / 1e9
            out.setdefault(n, []).append({"layer_norm_us": norm * 1e6, "gemm_gflops": gflops})
    auto = probe_threads()
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; threads='auto' picks {auto}")
    print("| threads | LayerNorm (1, 75, 64) µs | GEMM 1500×768×6144 GFLOP/s |\n|---|---|---|")
    for n, runs in out.items():
        for r in runs:
            print(f"| {n} | {r['layer_norm_us']:.0f} | {r['gemm_gflops']:.1f} |")
    return {"runs": out, "auto": auto, "load_average": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-python", help="python of the venv with stable-audio-tools 0.0.20 and DAC 1.0.0")
    parser.add_argument("--stable-codec-python", help="python of the venv with stable-audio-tools 0.0.17")
    parser.add_argument("--sizes", nargs="*", default=["240m", "950m"], help="TAAE ladder sizes")
    parser.add_argument("--dac", action="store_true", help="also configs/rvqgan/dac16k.yaml vs DAC 1.0.0")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="rows to skip: fp32+compile int8 onnx flex chunked full")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--checkpoint", default=str(ROOT / "runs/quickstart/checkpoints/last.ckpt"))
    parser.add_argument("--data", default=str(ROOT / "data/demo/test"))
    parser.add_argument("--threads-check", action="store_true")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args()
    if args.threads_check:
        results = {"threads": threads_check(args)}
    elif args.quality:
        results = {"quality": quality(args)}
    else:
        results = speed(args)
        print_speed(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()

"""Long inputs: seam error of chunked vs whole-file coding against the overlap, and peak memory of chunking.

1. Seam error. The same audio is coded whole and in ``--chunk-seconds`` chunks with each ``--overlaps`` value
   (latent frames of context per side, see ``taae.codec.chunked``). Reported per overlap:
   - latent: max and RMS |Δ| of the encoder's bounded latent tanh(z) (TAAE), the quantity tokens are cut from;
   - tokens: fraction of tokens that differ (native preset and 700 bps);
   - decode: max and RMS |Δ| of decoding the same (whole-file) tokens chunked vs whole, and the RMS error
     relative to the RMS of the whole-file output in dB.
   Models: a tiny random TAAE with LayerScale 1 (so the transformer matters as much as a trained one's), and a
   trained checkpoint when ``--checkpoint`` is given or runs/quickstart/checkpoints/last.ckpt exists.
2. Memory. Each (minutes, chunking) case runs in a fresh subprocess that encodes and decodes that much audio and
   reports its peak RSS during coding (VmHWM after resetting it, else ``getrusage`` ru_maxrss) and the RSS before
   coding; 1 vs 10 minutes with chunking shows that only the O(T) waveform buffers grow, while whole-file coding
   also grows the model's activations. "coding" rows skip loudness normalisation to isolate the model.

    python benchmarks/long_file.py                      # both parts, demo speech if data/demo exists
    python benchmarks/long_file.py --skip-memory --seconds 120 --overlaps 0 8 32
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import taae  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
from codec_speed import speech  # noqa: E402

from taae.codec import Codec  # noqa: E402
from taae.codec.chunking import chunked  # noqa: E402
from taae.io.registry import instantiate  # noqa: E402
from taae.models import generator_spec  # noqa: E402
from taae.models.base import num_frames  # noqa: E402

QUICKSTART = ROOT / "runs/quickstart/checkpoints/last.ckpt"


def load_spec(config: str, **overrides) -> dict:
    """The generator spec of a training YAML, with ``init_args.config`` fields overridden."""
    import yaml

    spec = generator_spec(yaml.safe_load(Path(config).read_text()))
    spec = {**spec, "init_args": {**spec.get("init_args", {})}}
    spec["init_args"]["config"] = {**spec["init_args"].get("config", {}), **overrides}
    return spec


def random_codec(config: str, **kwargs) -> Codec:
    """The config's generator with random weights and LayerScale 1, so the transformer matters as a trained one's."""
    torch.manual_seed(0)
    spec = load_spec(config, layer_scale_init=1.0) if "TAAE" in Path(config).read_text() else load_spec(config)
    return Codec(instantiate(spec), spec=spec, **kwargs)


def seam_table(codec: Codec, wav: torch.Tensor, chunk_seconds: float, overlaps: list[int], label: str) -> None:
    model, hop = codec.model, codec.hop_length
    x = codec.preprocess(wav, codec.sample_rate).unsqueeze(0)  # (1, 1, T)
    frames = num_frames(x.shape[-1], hop)
    x = torch.nn.functional.pad(x, (0, frames * hop - x.shape[-1]))
    chunk = round(chunk_seconds * codec.frame_rate)
    with torch.inference_mode():
        has_latent = hasattr(model, "encode_latent")
        latent = model.encode_latent(x) if has_latent else None
        tokens = {p: model.encode(x, p) for p in ("native", "700bps") if p in codec.presets()}
        ref_tokens = tokens.get("700bps", tokens["native"])
        ref_preset = "700bps" if "700bps" in tokens else "native"
        audio = model.decode(ref_tokens, ref_preset)
    rms = audio.pow(2).mean().sqrt().item()
    print(f"\n{label}: {x.shape[-1] / codec.sample_rate:.0f} s, {frames} frames, chunks of {chunk} frames "
          f"({chunk_seconds:g} s), {-(-frames // chunk) - 1} seams; whole-file decode RMS {rms:.4f}")
    print(f"{'overlap':>8}{'latent max':>12}{'latent rms':>12}{'tok native':>12}{'tok 700bps':>12}"
          f"{'decode max':>12}{'decode rms':>12}{'rel dB':>8}{'time s':>8}")
    for overlap in overlaps:
        start = time.perf_counter()
        with torch.inference_mode():
            row = [f"{overlap:>8}"]
            if has_latent:
                lat = chunked(model.encode_latent, x, frames, hop, 1, chunk, overlap)
                d = (lat - latent).abs()
                row += [f"{d.max().item():>12.2e}", f"{d.pow(2).mean().sqrt().item():>12.2e}"]
            else:
                row += [f"{'-':>12}"] * 2
            for p in ("native", "700bps"):
                if p in tokens:
                    t = chunked(lambda w, p=p: model.encode(w, p), x, frames, hop, 1, chunk, overlap)
                    row.append(f"{(t != tokens[p]).double().mean().item():>12.2e}")
                else:
                    row.append(f"{'-':>12}")
            y = chunked(lambda t: model.decode(t, ref_preset), ref_tokens, frames, 1, hop, chunk, overlap)
            d = (y - audio).abs()
            err = d.pow(2).mean().sqrt().item()
            rel = 20 * torch.log10(torch.tensor(max(err, 1e-12) / rms)).item()
            row += [f"{d.max().item():>12.2e}", f"{err:>12.2e}", f"{rel:>8.1f}"]
        print("".join(row) + f"{time.perf_counter() - start:>8.1f}")


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak RSS. Linux ``ru_maxrss`` also counts the parent's RSS at fork (exec keeps the old
    mm's high-water mark), so prefer the new mm's own VmHWM."""
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_worker(args) -> None:
    """Encode + decode ``--minutes`` of audio once; print JSON with peak RSS (subprocess entry point)."""
    torch.set_num_threads(args.threads)
    codec = random_codec(args.config, chunk_seconds=args.chunk_seconds if args.chunk_seconds > 0 else None)
    wav = speech(args.minutes * 60, codec.sample_rate, Path(args.audio) if args.audio else None)
    try:  # reset the high-water mark to the current RSS, so that loading the audio does not count
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before = _status_mib("VmRSS") or peak_rss_mib()
    start = time.perf_counter()
    tokens = codec.encode(wav, codec.sample_rate, "700bps", normalize=not args.no_normalize)
    out = codec.decode(tokens, "700bps", num_samples=wav.shape[-1])
    assert out.shape == wav.shape
    print(json.dumps({"minutes": args.minutes, "chunk_seconds": args.chunk_seconds, "before_mib": before,
                      "peak_mib": peak_rss_mib(), "seconds": time.perf_counter() - start}))


def memory_table(args) -> None:
    print(f"\npeak RSS, encode + decode (700bps), {Path(args.config).name} (random), {args.threads} threads, "
          "fresh process per row;\n'coding' skips loudness normalisation, so it isolates the model's memory")
    print(f"{'minutes':>8}{'chunking':>10}{'pipeline':>10}{'RSS before MiB':>16}{'peak MiB':>10}{'growth MiB':>12}"
          f"{'time s':>8}")
    cases = [(1, args.chunk_seconds, False), (10, args.chunk_seconds, False), (1, 0, False), (10, 0, False),
             (1, args.chunk_seconds, True), (10, args.chunk_seconds, True)]
    for minutes, chunk, normalize in cases:
        cmd = [sys.executable, __file__, "--memory-worker", "--minutes", str(minutes), "--chunk-seconds", str(chunk),
               "--config", args.config, "--threads", str(args.threads), "--audio", args.audio or ""]
        result = subprocess.run(cmd + ([] if normalize else ["--no-normalize"]), capture_output=True, text=True)
        label = f"{minutes:>8}{'whole' if not chunk else f'{chunk:g} s':>10}{'full' if normalize else 'coding':>10}"
        if result.returncode:
            print(f"{label}  failed: {result.stderr[-300:]}")
            continue
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{label}{r['before_mib']:>16.0f}{r['peak_mib']:>10.0f}{r['peak_mib'] - r['before_mib']:>12.0f}"
              f"{r['seconds']:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/taae/tiny.yaml"))
    parser.add_argument("--checkpoint", default=None, help=f"a trained model (default: {QUICKSTART} if present)")
    parser.add_argument("--seconds", type=float, default=240.0, help="audio length for the seam table")
    parser.add_argument("--chunk-seconds", type=float, default=30.0)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[0, 4, 8, 16, 32, 64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--audio", default=str(ROOT / "data/demo"), help="folder of speech .wav (else synthetic)")
    parser.add_argument("--skip-seams", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--minutes", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--no-normalize", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        return memory_worker(args)

    torch.set_num_threads(args.threads)
    if not args.skip_seams:
        wav = speech(args.seconds, 16000, Path(args.audio) if args.audio else None)
        seam_table(random_codec(args.config), wav, args.chunk_seconds, args.overlaps,
                   f"random {Path(args.config).name}, LayerScale 1")
        checkpoint = args.checkpoint or (str(QUICKSTART) if QUICKSTART.is_file() else None)
        if checkpoint:
            seam_table(Codec.load(checkpoint), wav, args.chunk_seconds, args.overlaps, f"trained {checkpoint}")
        else:
            print(f"\n(no trained checkpoint: pass --checkpoint or create {QUICKSTART})")
    if not args.skip_memory:
        memory_table(args)


if __name__ == "__main__":
    main()

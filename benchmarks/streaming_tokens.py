"""How often streaming tokens differ from offline tokens: differing token digits per hour of audio.

A causal TAAE streamed chunk by chunk computes the same latent as its offline forward, but each chunk's sums
accumulate in another order, so the two latents differ by float rounding (Δ ~ 1e-6). A token digit differs when a
latent value sits within Δ of a rounding boundary of the quantiser. That is rare, so it is counted two ways:

- ``direct``: digits of the streamed tokens that differ from the offline ones (the real rate, few events);
- ``×k``: the offline latent moved k times as far as the streaming path moves it (z_off + k·(z_stream − z_off)),
  digits that then differ, divided by k. Boundaries are locally uniform at this scale (k·Δ ≪ a quantiser bin), so
  the count grows linearly in k and ×k estimates the rate with k times the events.

A *digit* is one of the D quantised latent dimensions of a frame (D per frame: 6 for the paper's FSQ); a preset's
token is a residual stage index, and its digits are compared through the codes the tokens decode to. The streams
are ``--streams`` parallel items of one batch (a batch is how a server streams; the rounding differs from a
single stream's only in which kernels run).

    python benchmarks/streaming_tokens.py                                  # causal_tiny geometry, random init
    python benchmarks/streaming_tokens.py --checkpoint runs/causal_tiny/checkpoints/last.ckpt --minutes 60
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import taae  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from codec_speed import speech  # noqa: E402
from streaming import CAUSAL_TINY  # noqa: E402  (how causal_tiny.yaml composes: one place, streaming.py)

from taae.codec.streaming import init_state, latent_step  # noqa: E402


def build_model(args) -> torch.nn.Module:
    if args.checkpoint:
        from taae.codec import Codec

        return Codec.load(args.checkpoint).model.eval()
    from taae.models import from_config

    torch.manual_seed(args.seed)
    model = from_config(*args.config).eval()
    with torch.no_grad():  # untrained, LayerScale 1e-4 would leave the transformers (and their sums) out
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    return model


def streamed_latent(model, wav: torch.Tensor, chunk_frames: int) -> torch.Tensor:
    """(B, 1, S·hop) → the latent (B, D, S) computed chunk by chunk, as ``encode_step`` computes it."""
    hop, frames = model.hop_length, wav.shape[-1] // model.hop_length
    state, pieces = init_state(model, "encoder", wav.shape[0]), []
    for start in range(0, frames, chunk_frames):
        z, state = latent_step(model, wav[..., start * hop: min(frames, start + chunk_frames) * hop], state)
        pieces.append(z)
    return torch.cat(pieces, dim=-1)


def differing_digits(model, a: torch.Tensor, b: torch.Tensor, preset: str) -> int:
    """Quantised latent dimensions (digits) whose value differs between the tokens of latents ``a`` and ``b``."""
    codes = [model.codes_from_tokens(model.tokens_from_latent(z, preset), preset) for z in (a, b)]
    return int((codes[0] != codes[1]).sum())


def measure(model, wav: torch.Tensor, chunk_frames: int, presets: list[str], gains: list[float]) -> dict:
    """Counts for one batch of streams: ``{preset: {gain: differing digits}}`` (gain 1 is the real rate), plus
    the latent discrepancy and the number of digits compared."""
    with torch.no_grad():
        offline = model.encode_unbounded(wav)
    streamed = streamed_latent(model, wav, chunk_frames)
    delta = streamed - offline
    counts = {p: {g: differing_digits(model, offline, offline + g * delta, p) for g in gains} for p in presets}
    return {"counts": counts, "max_delta": float(delta.abs().max()), "digits": offline.numel(),
            "exact_latent": bool(torch.equal(streamed, offline))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=[str(ROOT / "configs" / name) for name in CAUSAL_TINY],
                        help="YAML files composed left to right (default: the causal quickstart)")
    parser.add_argument("--checkpoint", default=None, help="a trained causal .ckpt or export (overrides --config)")
    parser.add_argument("--minutes", type=float, default=10.0, help="audio streamed in all")
    parser.add_argument("--streams", type=int, default=16, help="parallel streams (one batch)")
    parser.add_argument("--chunk-frames", type=int, default=1, help="frames per chunk (1 = 40 ms)")
    parser.add_argument("--presets", nargs="+", default=["native", "700bps"])
    parser.add_argument("--gains", type=float, nargs="+", default=[1.0, 100.0, 1000.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="random init of the default model")
    parser.add_argument("--audio", default=str(ROOT / "data/demo"), help="folder of speech .wav (else synthetic)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = build_model(args)
    seconds = 60 * args.minutes
    per_stream = max(1, round(seconds / args.streams * model.sample_rate / model.hop_length)) * model.hop_length
    wav = speech(per_stream * args.streams / model.sample_rate, model.sample_rate, Path(args.audio))
    wav = wav[:, : per_stream * args.streams].reshape(args.streams, 1, per_stream)  # (B, 1, T): consecutive parts
    hours = wav.numel() / model.sample_rate / 3600
    start = time.process_time()
    result = measure(model, wav, args.chunk_frames, args.presets, args.gains)
    cpu = time.process_time() - start
    print(f"{type(model).__name__} causal={model.config.causal}, {hours * 60:g} min of audio in {args.streams} "
          f"streams, chunks of {args.chunk_frames} frame(s), {result['digits']:,} latent digits, max |Δz| "
          f"{result['max_delta']:.2e}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{platform.processor() or platform.machine()}, {cpu:.0f} s CPU")
    print(f"{'preset':>8}" + "".join(f"{'×' + format(g, 'g'):>12}" for g in args.gains)
          + f"{'per hour (direct)':>20}{'per hour (×' + format(max(args.gains), 'g') + ')':>20}")
    for preset, counts in result["counts"].items():
        top = max(args.gains)
        print(f"{preset:>8}" + "".join(f"{counts[g]:>12}" for g in args.gains)
              + f"{counts.get(1.0, float('nan')) / hours:>20.2f}{counts[top] / top / hours:>20.2f}")
    result["hours"] = hours
    return result


if __name__ == "__main__":
    main()

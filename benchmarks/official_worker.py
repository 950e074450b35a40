"""The official side of ``benchmarks/cpu_inference.py``, run by the official packages' own Python.

It imports only torch, numpy and the official package (stable-audio-tools or descript-audio-codec), never taae,
so it runs in the separate venv the official packages need. The parent process writes the weights (already in the
official layout), the audio and the codes to a folder and drives this process over stdin/stdout, one JSON object
per line, so that both sides are timed alternately in one run:

    {"cmd": "time"}     → {"seconds": wall time of one encode + decode of the audio}
    {"cmd": "outputs"}  → writes outputs.pt (the encoder's latent of the audio, the decoder's output for the
                          parent's codes) and answers {"ok": true}
    {"cmd": "quit"}

Arguments: --kind sat|dac, --folder (weights.pt, audio.pt, codes.pt, config.json), --threads, and for SAT
--attention flex|chunked|full: flex is stable-audio-tools 0.0.20's default windowed path (compiled FlexAttention,
one compile per input length, done in a warm-up call), chunked its chunked-halo SDPA fallback (FlexAttention
switched off), full the full attention that 0.0.17 (stable-codec 0.1.2) runs without flash-attn.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def build_sat(folder: Path, attention: str):
    from stable_audio_tools.models import transformer
    from stable_audio_tools.models.factory import create_model_from_config

    config = json.loads((folder / "config.json").read_text())
    if attention == "chunked":
        transformer.flex_attention_available = False
    model = create_model_from_config(config).eval()
    state = torch.load(folder / "weights.pt", weights_only=True)
    own = model.state_dict()
    state.update({k: v for k, v in own.items() if k.endswith("rope.inv_freq") or k.endswith(".beta")})
    model.load_state_dict(state, strict=True)
    if attention == "full":
        for module in model.modules():
            if hasattr(module, "sliding_window"):
                module.sliding_window = None

    def encode_decode(audio):
        return model.decode(model.encode(audio))

    def outputs(audio, codes):
        return {"latent": model.encoder(model.pretransform.encode(audio)),
                "decoded": model.decoder(codes) if model.pretransform is None
                else model.pretransform.decode(model.decoder(codes))}

    return encode_decode, outputs


def build_dac(folder: Path):
    import dac

    config = json.loads((folder / "config.json").read_text())
    model = dac.DAC(**config).eval()
    model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True), strict=True)

    def encode_decode(audio):  # to tokens and back, as taae's side does
        _, codes, *_ = model.encode(model.preprocess(audio, model.sample_rate))
        return model.decode(model.quantizer.from_codes(codes)[0])

    def outputs(audio, codes):
        return {"latent": model.encoder(audio), "decoded": model.decode(model.quantizer.from_codes(codes)[0])}

    return encode_decode, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=["sat", "dac"], required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention", choices=["flex", "chunked", "full"], default="flex")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encode_decode, outputs = build_sat(args.folder, args.attention) if args.kind == "sat" else build_dac(args.folder)
    audio = torch.load(args.folder / "audio.pt", weights_only=True)  # (1, 1, T)
    codes = torch.load(args.folder / "codes.pt", weights_only=True)
    with torch.inference_mode():
        encode_decode(audio)  # warm-up: allocator, oneDNN primitives, FlexAttention's compile for this length
        print(json.dumps({"ready": True, "torch": torch.__version__}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)["cmd"]
            if cmd == "time":
                start = time.perf_counter()
                encode_decode(audio)
                print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
            elif cmd == "outputs":
                torch.save({k: v.contiguous() for k, v in outputs(audio, codes).items()}, args.folder / "outputs.pt")
                print(json.dumps({"ok": True}), flush=True)
            else:
                break


if __name__ == "__main__":
    main()

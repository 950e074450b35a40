"""``python -m taae`` / ``taae``: encode, decode, stream, info, export. Each verb calls :class:`taae.codec.Codec`.

    taae encode speech.wav speech.npz --checkpoint last.ckpt --preset 700bps
    taae encode corpus/ tokens/ --checkpoint export/            # folder: mirrors the tree, .wav/.flac/.ogg
    taae encode "corpus/**/*.flac" tokens/ --checkpoint export/ # glob (quoted)
    taae decode tokens/ decoded/ --checkpoint export/
    taae stream speech.wav decoded.wav --checkpoint causal.ckpt --chunk-ms 40 --preset 700bps  # causal models
    taae info --checkpoint last.ckpt
    taae export --checkpoint last.ckpt export/ [--no-ema]
    taae import stable-codec stable-codec-speech-16k/ export/   # or: model_config.json model.safetensors export/
    taae import dac weights_16khz.pth export/

Corpus verbs (``taae.jobs.cli``): ``prepare`` (audio → lhotse Shar), ``tokenize`` (Shar → token shards, multi-device),
``tokens-export`` (token shards → one flat array for LM training).
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from pathlib import Path

from tqdm import tqdm

from taae.errors import DEBUG_FLAG, one_line, pop_debug, run_main
from taae.io.atomic import check_not_input

TOKEN_SUFFIXES = (".npz",)


def find_jobs(source: str, dest: str, suffixes: tuple[str, ...],
              out_suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file → ``dest`` (a file with one of ``out_suffixes``, else a folder), a folder
    (recursive) or a glob → ``dest`` as a folder mirroring the tree below the folder or the glob's fixed part."""
    path, out_suffix = Path(source), out_suffixes[0]
    if path.is_file():
        out = Path(dest)
        out = out if out.suffix.lower() in out_suffixes else out / (path.stem + out_suffix)
        check_not_input(out, [path])
        return [(path, out)]
    if path.is_dir():
        root, files = path, sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    elif glob.has_magic(source):
        parts = Path(source).parts
        fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
        root = Path(*parts[:fixed]) if fixed else Path(".")
        files = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
    else:
        raise FileNotFoundError(f"input not found: {source} (give a file, a folder or a quoted glob)")
    if not files:
        raise FileNotFoundError(f"no {'/'.join(suffixes)} files in {source}")
    if Path(dest).suffix.lower() in out_suffixes:
        raise ValueError(f"{source} holds several inputs; give an output folder, not {dest}")
    jobs = [(f, Path(dest) / f.relative_to(root).with_suffix(out_suffix)) for f in files]
    seen: dict[Path, Path] = {}
    for src, out in jobs:
        check_not_input(out, [src])
        if out in seen:
            raise ValueError(f"{seen[out]} and {src} would both write {out}")
        seen[out] = src
    return jobs


def run_jobs(jobs: list[tuple[Path, Path]], work, verb: str) -> int:
    """Run ``work(src, out)`` per job with a progress bar; report and count failures. Returns the exit code."""
    failed = 0
    for src, out in tqdm(jobs, desc=verb, unit="file", disable=len(jobs) < 2, file=sys.stderr):
        try:
            work(src, out)
        except (ValueError, OSError, RuntimeError) as err:  # AudioError is a ValueError
            failed += 1
            tqdm.write(f"taae {verb}: failed on {src}: {one_line(err)}", file=sys.stderr)
    if failed:
        print(f"taae {verb}: {failed} of {len(jobs)} files failed", file=sys.stderr)
    elif len(jobs) > 1:
        print(f"taae {verb}: {len(jobs)} files written under {jobs[0][1].parent}", file=sys.stderr)
    return 1 if failed else 0


def _threads(text: str) -> int | str | None:
    if text in ("auto", "torch"):
        return None if text == "torch" else text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected auto, torch or a count >= 1, got {text!r}")
    return int(text)


def _codec(args, use_ema: bool = True):
    from taae.codec import Codec

    kwargs = {}
    if getattr(args, "chunk_seconds", None) is not None:
        if not (math.isfinite(args.chunk_seconds) and args.chunk_seconds >= 0):  # NaN and -1 used to mean "never"
            raise ValueError(f"--chunk-seconds must be a length in seconds, or 0 to never chunk; got "
                             f"{args.chunk_seconds}")
        kwargs["chunk_seconds"] = args.chunk_seconds if args.chunk_seconds > 0 else None
    if getattr(args, "overlap_frames", None) is not None:
        kwargs["overlap_frames"] = args.overlap_frames
    if getattr(args, "precision", None) is not None:
        from taae.codec.inference import InferenceOptions

        kwargs["inference"] = InferenceOptions(args.threads, args.precision)
    return Codec.load(args.checkpoint, device=args.device, use_ema=use_ema, trust=args.trust_checkpoint,
                      runtime=getattr(args, "runtime", "torch"), **kwargs)


def cmd_encode(args) -> int:
    from taae.io.audio import AUDIO_SUFFIXES

    codec = _codec(args)
    jobs = find_jobs(args.input, args.output, AUDIO_SUFFIXES, TOKEN_SUFFIXES)
    return run_jobs(jobs, lambda src, out: codec.encode_file(src, args.preset, not args.no_normalize).save(out),
                    "encode")


def cmd_decode(args) -> int:
    from taae.io.audio import save_audio

    codec = _codec(args)

    def work(src: Path, out: Path) -> None:
        wav = codec.decode_file(src, check_hash=not args.no_hash_check, keep_level=args.keep_level)
        save_audio(out, wav, codec.sample_rate, args.subtype)

    return run_jobs(find_jobs(args.input, args.output, TOKEN_SUFFIXES, (".wav", ".flac")), work, "decode")


def cmd_stream(args) -> int:
    from taae.codec.stream_file import stream_file

    report = stream_file(_codec(args), args.input, args.output, args.chunk_ms, args.preset, not args.no_normalize,
                         args.subtype, args.tokens)
    print(report.summary(per_chunk=args.print_chunks))
    return 0


def cmd_info(args) -> int:
    print(_codec(args).summary())
    return 0


def cmd_export(args) -> int:
    codec = _codec(args, use_ema=not args.no_ema)
    folder = codec.export(args.output, args.training_config, args.evaluation, onnx=args.onnx)
    print(f"exported {codec.weights} weights (hash {codec.model_hash}) and a model card to {folder}")
    return 0


def cmd_import(args) -> int:
    from taae.import_official import import_official

    for line in import_official(args.kind, args.sources, args.output, use_ema=not args.no_ema):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taae", description="TAAE / RVQGAN speech codec: encode, decode, "
                                     "inspect and export trained models.")
    parser.add_argument(DEBUG_FLAG, action="store_true", help="show tracebacks for user errors too (also accepted "
                        "after the verb, or TAAE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{encode,decode,stream,info,export,import,prepare,tokenize,tokens-export}")

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--checkpoint", "-c", required=True, help="Lightning .ckpt or exported folder")
        p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
        p.add_argument("--trust-checkpoint", action="store_true",
                       help="fully unpickle a .ckpt that the safe load refuses (it can run code: trusted files only)")
        p.set_defaults(func=func)
        return p

    for name, help, func in (("encode", "audio file / folder / glob → .npz token files", cmd_encode),
                             ("decode", ".npz token file / folder / glob → .wav files", cmd_decode)):
        p = add(name, help, func)
        p.add_argument("input", help="a file, a folder (searched recursively) or a quoted glob")
        p.add_argument("output", help="output file (single input) or folder (mirrors the input tree)")
        p.add_argument("--chunk-seconds", type=float, help="process longer inputs in chunks (0: never chunk)")
        p.add_argument("--overlap-frames", type=int, help="latent frames of context on each side of a chunk")
        p.add_argument("--threads", default="auto", type=_threads,
                       help="CPU threads: auto (measured, holds up on a busy machine), torch (its default) or a count; "
                       "a fixed count gives bit-reproducible tokens")
        p.add_argument("--runtime", default="torch", choices=["torch", "onnx"],
                       help="torch (default) or onnx: an export's onnx/ folder in ONNX Runtime (taae export --onnx)")
        p.add_argument("--precision", default="fp32", choices=["fp32", "int8", "bf16"],
                       help="fp32 (default); int8 (AVX2 and up) and bf16 (CPUs with AMX or AVX512-BF16) trade "
                       "accuracy for CPU speed (see taae.codec.inference)")
    encode = sub.choices["encode"]
    encode.add_argument("--preset", "-p", default=None,
                        help="preset name or alias (see `taae info`), or TAAE stages such as 5x5:1,0.25")
    encode.add_argument("--no-normalize", action="store_true", help="skip loudness normalisation to -20 LUFS")
    decode = sub.choices["decode"]
    decode.add_argument("--no-hash-check", action="store_true",
                        help="decode tokens written by a different model (hash mismatch) anyway")
    decode.add_argument("--subtype", default="PCM_16", help="libsndfile subtype of the .wav (PCM_16, FLOAT, ...)")
    decode.add_argument("--keep-level", action="store_true",
                        help="keep the coded loudness (-20 LUFS) instead of restoring the input's level")
    stream = add("stream", "audio file → the causal model's streaming path in real-time chunks → .wav, with "
                 "per-chunk compute time, latency and real-time factor", cmd_stream)
    stream.add_argument("input", help="audio file")
    stream.add_argument("output", help="decoded audio file (.wav, .flac)")
    stream.add_argument("--chunk-ms", type=float, default=40.0, help="chunk length, a whole number of frames "
                        "(default 40 ms = one 25 Hz frame)")
    stream.add_argument("--tokens", default=None, help="also write the tokens to this .npz (taae decode reads it)")
    stream.add_argument("--print-chunks", action="store_true", help="print every chunk's compute time")
    stream.add_argument("--preset", "-p", default=None, help="as in encode (default: native)")
    stream.add_argument("--no-normalize", action="store_true", help="keep the level, as a live stream must "
                        "(normalisation to -20 LUFS measures the whole file first)")
    stream.add_argument("--subtype", default="PCM_16", help="as in decode (default: PCM_16)")
    stream.add_argument("--runtime", default="torch", choices=["torch", "onnx"],
                        help="torch (default) or onnx: the export's streaming step in ONNX Runtime "
                        "(taae export --onnx)")
    add("info", "parameters, rates, hash and every preset's bitrate", cmd_info)
    export = add("export", "write config.json + model.safetensors + a model card (README.md)", cmd_export)
    export.add_argument("output", help="output folder")
    export.add_argument("--training-config", help="the training YAML, summarised in the model card")
    export.add_argument("--evaluation", help="evaluate.py's report.md, the model card's evaluation table")
    export.add_argument("--onnx", action="store_true",
                        help="also write onnx/: the encoder and decoder for ONNX Runtime")
    export.add_argument("--no-ema", action="store_true", help="export the raw generator weights, not the EMA")
    help = "released official weights (stable-codec folder or files, DAC .pth) → a taae export folder"
    imp = sub.add_parser("import", help=help, description=help)
    imp.add_argument("kind", choices=["stable-codec", "dac"])
    imp.add_argument("sources", nargs="+", help="stable-codec: its folder, or model_config.json and the weights; "
                     "dac: the weights .pth")
    imp.add_argument("output", help="output folder (config.json + model.safetensors)")
    imp.add_argument("--no-ema", action="store_true", help="stable-codec training checkpoints: autoencoder., not "
                     "autoencoder_ema.")
    imp.set_defaults(func=cmd_import)
    from taae.jobs.cli import add_commands

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv, debug = pop_debug(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return run_main(f"taae {args.command}", lambda: args.func(args), debug)


if __name__ == "__main__":
    sys.exit(main())

"""The corpus verbs of ``taae``: ``prepare``, ``tokenize``, ``tokens-export`` (registered by ``taae.__main__``).

    taae prepare data/demo/train shar/train --shard-size 1000 --jobs 8      # folder or manifest -> Shar
    taae tokenize shar/train tokens/train -c last.ckpt -p 700bps --devices 8 # Lightning predict, one shard each
    taae tokens-export tokens/train lm/train                                 # tokens.npy (frames, K) + offsets
"""

from __future__ import annotations

import argparse
import sys


def cmd_prepare(args) -> int:
    from taae.data.prepare import prepare

    report = prepare(args.input, args.output, args.shard_size, args.jobs, args.format, progress=not args.quiet)
    for path, why in report.skipped:
        print(f"taae prepare: skipped {path}: {why}", file=sys.stderr)
    print(report.summary())
    return 0


def cmd_tokenize(args) -> int:
    from taae.jobs.tokenize import tokenize

    report = tokenize(args.input, args.output, args.checkpoint, args.preset, args.devices, args.num_nodes,
                      args.accelerator, args.format, args.num_workers, not args.no_normalize,
                      progress=not args.quiet, batch_seconds=args.batch_seconds)
    if report.is_global_zero:
        print(report.summary())
    return 0


def cmd_tokens_export(args) -> int:
    from taae.jobs.lm_export import export_tokens

    info = export_tokens(args.input, args.output)
    print(f"{args.output}: {info['cuts']} cuts, {info['frames']} frames × {len(info['vocab_sizes'])} tokens "
          f"({info['dtype']}), {info['hours']:.3f} h")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="audio folder / manifest → lhotse Shar shards",
                       description="audio folder / manifest → lhotse Shar shards (resumable, in parallel)")
    p.add_argument("input", help="a folder (searched recursively) or a manifest (txt, TSV/CSV/JSONL with 'path')")
    p.add_argument("output", help="the Shar folder to write (complete shards are kept on a re-run)")
    p.add_argument("--shard-size", type=int, default=1000, help="files per shard (default 1000)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="shards written in parallel (processes)")
    p.add_argument("--format", default="flac", choices=["flac", "wav"], help="audio in the tars (lossless)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("tokenize", help="Shar shards → token shards (Lightning predict, multi-device)",
                       description="Shar shards → one token shard per input shard, and manifest.json")
    p.add_argument("input", help="a local Shar folder (cuts.NNNNNN.jsonl.gz + recording.NNNNNN.tar)")
    p.add_argument("output", help="the token folder (complete shards are kept on a re-run)")
    p.add_argument("--checkpoint", "-c", required=True, help="Lightning .ckpt or exported folder")
    p.add_argument("--preset", "-p", default=None, help="preset name or alias (see `taae info`)")
    p.add_argument("--devices", type=int, default=1, help="devices per node (DDP when more than one)")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes (start the command on each: torchrun/SLURM)")
    p.add_argument("--accelerator", default="auto", help="auto (default), cpu, gpu, ...")
    p.add_argument("--format", default="npz", choices=["npz", "tar"],
                   help="npz per shard, or tar: a lhotse Shar 'codes' field")
    p.add_argument("--num-workers", type=int, default=0, help="loader workers per device (decode, resample)")
    p.add_argument("--no-normalize", action="store_true", help="skip loudness normalisation to -20 LUFS")
    p.add_argument("--batch-seconds", type=float, default=None,
                   help="encode a shard's cuts of equal frame counts together, up to this much audio per forward "
                   "(same tokens and files as one cut at a time; default: one cut per forward)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("tokens-export", help="token shards → flat tokens.npy + offsets for LM training",
                       description="token shards → tokens.npy (frames, K), offsets.npy, cut_ids.txt, export.json")
    p.add_argument("input", help="a `taae tokenize` output folder")
    p.add_argument("output", help="the export folder")
    p.set_defaults(func=cmd_tokens_export)

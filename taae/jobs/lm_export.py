"""Token shards -> one flat memory-mappable array for LM training (``taae tokens-export TOKENS OUT``).

Shape legend: F frames of every cut concatenated, K tokens per frame.

OUT holds ``tokens.npy`` (F, K) in the shards' unsigned type (``numpy.load(path, mmap_mode="r")`` maps it without
reading it), ``offsets.npy`` (cuts + 1,) int64 (cut i is ``tokens[offsets[i]:offsets[i + 1]]``), ``cut_ids.txt``
(one id per line, same order: shards ascending, cuts in stored order) and ``export.json`` (the tokenization job:
model hash, preset, vocabularies, frame rate; and the counts). Each file is written atomically; ``tokens.npy`` is
filled shard by shard, so memory stays at one shard.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from taae.io.atomic import atomic_write, fsync_replace, new_file_mode, write_json
from taae.jobs.token_shards import load_manifest, read_token_shard


def export_tokens(tokens_dir: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Write the flat export of a complete tokenization folder; returns ``export.json``'s content.

    Raises:
        FileNotFoundError: ``tokens_dir`` has no manifest.
        ValueError: the tokenization is not complete (re-run ``taae tokenize`` first) or a shard is unreadable.
    """
    tokens_dir, out = Path(tokens_dir), Path(out)
    manifest = load_manifest(tokens_dir)
    if manifest["shards_complete"] != manifest["shards_total"]:
        raise ValueError(f"{tokens_dir}: {manifest['shards_complete']} of {manifest['shards_total']} shards are "
                         "tokenized; re-run `taae tokenize` to finish before exporting")
    frames, width = int(manifest["frames"]), len(manifest["vocab_sizes"])
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tokens.npy.", suffix=".tmp", dir=out)
    os.close(fd)
    try:
        flat = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(manifest["dtype"]), shape=(frames, width))
        offsets, ids, at = [0], [], 0
        for shard in manifest["shards"]:
            for cut_id, tokens, _ in read_token_shard(tokens_dir, shard):
                flat[at:at + len(tokens)] = tokens
                at += len(tokens)
                offsets.append(at)
                ids.append(cut_id)
        if at != frames:
            raise ValueError(f"{tokens_dir}: the shards hold {at} frames but the manifest counts {frames}")
        flat.flush()
        del flat
        os.chmod(tmp, new_file_mode())  # mkstemp's 0600, as no other output of taae has
        fsync_replace(tmp, out / "tokens.npy")
    finally:
        Path(tmp).unlink(missing_ok=True)
    with atomic_write(out / "offsets.npy") as f:
        np.save(f, np.asarray(offsets, dtype=np.int64))
    with atomic_write(out / "cut_ids.txt") as f:
        f.write("".join(f"{i}\n" for i in ids).encode())
    info = {key: manifest[key] for key in ("model_hash", "preset", "vocab_sizes", "frame_rate", "sample_rate",
                                           "dtype", "normalize")}
    info |= {"source": str(tokens_dir), "cuts": len(ids), "frames": frames, "hours": manifest["hours"],
             "files": {"tokens": "tokens.npy", "offsets": "offsets.npy", "cut_ids": "cut_ids.txt"}}
    write_json(out / "export.json", info)
    return info

"""The model card ``taae export`` writes beside ``config.json``: ``README.md`` with the Hugging Face front matter.

Sections: the model (class, parameters, sample and frame rate, hop, hash), every preset with its bitrate (the rows
of ``taae info``), the architecture (the generator config), a summary of the training config when given (its YAML,
flattened to dotted keys) and the evaluation table when given (``evaluate.py``'s ``report.md``, inserted as it is,
figures left out: their paths are relative to the report).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CARD_NAME", "model_card"]

CARD_NAME = "README.md"
MAX_TRAINING_KEYS = 60
"""Dotted keys listed from a training config (ours: a summary, the YAML itself is the record)."""


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, value)]


def _read_text(path: str | os.PathLike, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} {path} is not UTF-8 text: {err}") from err


def training_summary(path: str | os.PathLike) -> list[str]:
    """Markdown lines: the training YAML's scalar and list settings as dotted keys, the generator config left out
    (the architecture section shows it)."""
    try:
        config = yaml.safe_load(_read_text(path, "training config"))
    except yaml.YAMLError as err:
        raise ValueError(f"training config {path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(config, dict):
        raise ValueError(f"training config {path}: expected a mapping at the top, got {type(config).__name__}")
    rows = [(k, v) for k, v in _flatten(config) if ".generator.init_args.config." not in f".{k}"]
    lines = [f"From `{Path(path).name}`:", "", "| key | value |", "|---|---|"]
    lines += [f"| `{k}` | `{v}` |" for k, v in rows[:MAX_TRAINING_KEYS]]
    if len(rows) > MAX_TRAINING_KEYS:
        lines.append(f"| … | {len(rows) - MAX_TRAINING_KEYS} more keys in the YAML |")
    return lines


def preset_rows(codec) -> list[tuple[str, str, Any]]:
    """(full name, alias or "", TokenSpec) of every preset of ``codec``, aliases folded into their preset's row."""
    aliases = codec.aliases()
    alias_of = {name: alias for alias, name in aliases.items()}
    return [(name, alias_of.get(name, ""), spec) for name, spec in codec.presets().items() if name not in aliases]


def summary_text(codec) -> str:
    """``taae info``: model, rates, hash and a table of every preset's bitrate."""
    lines = [
        f"model         {type(codec.model).__name__} ({codec.weights} weights), {codec.num_parameters:,} parameters",
        f"sample rate   {codec.sample_rate} Hz, frame rate {codec.frame_rate:g} Hz, hop {codec.hop_length} samples",
        f"model hash    {codec.model_hash}",
        "",
        f"{'preset':<18}{'alias':<9}{'tokens/frame':>13}{'vocab':>11}{'bits/frame':>12}{'bps':>8}{'exact bps':>11}",
    ]
    for name, alias, spec in preset_rows(codec):
        lines.append(f"{name:<18}{alias:<9}{spec.tokens_per_frame:>13}{spec.vocab_label:>11}"
                     f"{spec.bits_per_frame:>12}{spec.bitrate:>8g}{spec.exact_bitrate:>11.1f}")
    return "\n".join(lines)


def model_card(codec, training_config: str | os.PathLike | None = None,
               evaluation: str | os.PathLike | None = None) -> str:
    """The card's Markdown for ``codec`` (a :class:`taae.codec.Codec`)."""
    from taae import __version__

    model = codec.model
    name = type(model).__name__
    lines = ["---", "library_name: taae", "tags: [audio, speech, codec, audio-tokenizer]", "---", "",
             f"# {name} speech codec", "",
             f"A {name} codec exported by taae {__version__}. Load it with `Codec.load(\"<this folder or hub id>\")` "
             "or `taae encode -c <folder> in.wav out.npz -p <preset>`.", "",
             "| | |", "|---|---|",
             f"| parameters | {codec.num_parameters:,} |",
             f"| sample rate | {codec.sample_rate} Hz |",
             f"| frame rate | {codec.frame_rate:g} Hz (hop {codec.hop_length} samples) |",
             f"| weights | {codec.weights} |",
             f"| model hash | `{codec.model_hash}` |", "",
             "## Presets", "",
             "| preset | alias | tokens/frame | vocab | bits/frame | bps | exact bps |",
             "|---|---|---|---|---|---|---|"]
    for preset, alias, spec in preset_rows(codec):
        lines.append(f"| `{preset}` | {alias} | {spec.tokens_per_frame} | {spec.vocab_label} | "
                     f"{spec.bits_per_frame} | {spec.bitrate:g} | {spec.exact_bitrate:.1f} |")
    config = ((codec.spec or {}).get("init_args") or {}).get("config") or {}
    lines += ["", "## Architecture", "", f"`{(codec.spec or {}).get('class_path', name)}`:", "",
              "| key | value |", "|---|---|"]
    lines += [f"| `{k}` | `{v}` |" for k, v in _flatten(config) if k != "presets" and not k.startswith("presets.")]
    if training_config is not None:
        lines += ["", "## Training config", "", *training_summary(training_config)]
    if evaluation is not None:
        table = [line for line in _read_text(evaluation, "evaluation table").splitlines()
                 if not line.lstrip().startswith("![")]
        lines += ["", "## Evaluation", "", f"From `{Path(evaluation).name}`:", "", *table]
    return "\n".join(lines).rstrip() + "\n"

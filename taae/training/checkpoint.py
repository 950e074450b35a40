"""What a ``CodecModule`` checkpoint holds beyond Lightning's, and the weights a fine-tuning run starts from.

Every training checkpoint carries the generator's own description (``taae.generator``, so ``Codec.load`` rebuilds it
without the YAML or Lightning's hyper-parameters) and the global RNG (FSQ dither and quantizer dropout draw from it),
and must load with ``torch.load(weights_only=True)``: nothing in it may need unpickling.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from taae import __version__
from taae.io.checkpoints import load_checkpoint, make_checkpoint_safe
from taae.io.export import load_strict
from taae.io.registry import model_spec


def add_run_state(checkpoint: dict[str, Any], generator: nn.Module) -> None:
    """Add the generator's description and the RNG state to a checkpoint Lightning is saving, then make it safe."""
    spec = model_spec(generator)
    if spec is None:
        raise TypeError(f"{type(generator).__name__} has no dataclass `config`: it cannot be rebuilt "
                        "from a checkpoint")
    checkpoint["taae"] = {"generator": spec, "version": __version__}
    # Without the global RNG a resumed run diverges at once (dither, dropout).
    checkpoint["rng_state"] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()
    unsafe = make_checkpoint_safe(checkpoint)
    if unsafe:
        warnings.warn(f"this checkpoint will need full unpickling (a trust flag) to load: {'; '.join(unsafe[:5])}"
                      f"{' …' if len(unsafe) > 5 else ''}", stacklevel=3)


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the RNG state :func:`add_run_state` saved."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_weights(path: str, generator: nn.Module, discriminator: nn.Module | None, trust: bool = False,
                 report=print) -> None:
    """Initialise ``generator`` (strictly) and ``discriminator`` (the tensors whose shapes match) from a checkpoint,
    read with ``weights_only=True`` unless ``trust``; ``report`` says how much of the discriminator was found."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"model.init_weights_from: no such checkpoint: {path}")
    state = load_checkpoint(path, trust=trust, trust_hint="set model.init_args.trust_init_weights: true",
                            trust_source="model.init_args.trust_init_weights")
    if not isinstance(state, dict):
        raise ValueError(f"model.init_weights_from={path!r} is not a checkpoint (it holds a "
                         f"{type(state).__name__})")
    state = state.get("state_dict", state)
    weights = {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}
    if not weights:
        raise ValueError(f"model.init_weights_from={path!r} holds no generator weights")
    load_strict(generator, weights, f"model.init_weights_from={path}")
    if discriminator is not None:
        own = discriminator.state_dict()
        found = {k.removeprefix("discriminator."): v for k, v in state.items() if k.startswith("discriminator.")}
        matching = {k: v for k, v in found.items() if k in own and own[k].shape == v.shape}
        discriminator.load_state_dict(matching, strict=False)
        if len(matching) < len(own):
            report(f"discriminator: {len(matching)} of {len(own)} tensors initialised from {path}")

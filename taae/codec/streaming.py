"""Streaming TAAE: encode and decode a causal model chunk by chunk, with the offline model's numbers.

Shape legend: B batch (streams), T samples, n frames in a chunk, K tokens per frame, hop samples per frame.

The offline forward of a causal TAAE (``TAAEConfig.causal``, §9 item 13) is the reference: streaming a signal in
chunks of any whole number of frames gives the same tokens and the same audio (to float rounding) as encoding and
decoding it whole. Only a latent within float rounding of a quantiser boundary can round the other way: about 0.35
token digits per hour of audio on CPU (``benchmarks/streaming_tokens.py``; README, "Streaming"). Each layer
streams with a state of its own, kept beside it (:mod:`taae.nn.causal_conv`: input tails and transposed-conv overlap
tails; :mod:`taae.nn.kv_cache`: a KV cache of ``left`` keys at absolute RoPE
positions). The model itself holds no state, so offline calls in the middle of a stream are unaffected.

One implementation, two forms:

- explicit state, passed in and returned (tuples of tensors, one entry per layer, what ONNX and TorchScript need)::

      state = init_state(model, "encoder", batch_size)
      tokens, state = encode_step(model, chunk, state, preset)     # chunk (B, 1, n·hop) → tokens (B, K, n)
      dstate = init_state(model, "decoder", batch_size)
      audio, dstate = decode_step(model, tokens, dstate, preset)   # tokens (B, K, n) → audio (B, 1, n·hop)
      state = reset_state(state, items=[1])                         # item 1 starts a new stream

- a session that holds both states: ``with codec.streaming(batch_size, preset) as s: s.encode(chunk)``,
  ``s.decode(tokens)``, ``s.reset(item)``.

Latency: a frame's tokens exist once its last sample has arrived, and the decoder emits a frame's samples as soon
as its tokens arrive: the algorithmic latency is one chunk, ``n · hop / sample_rate`` (40 ms for one frame, the
paper's causal latency, arXiv 2411.19842 Table 11), plus compute.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from taae.models.taae import patch, unpatch

__all__ = [
    "StreamingSession",
    "algorithmic_latency",
    "decode_step",
    "encode_step",
    "init_state",
    "latent_step",
    "reset_state",
    "streaming",
]

SIDES = ("encoder", "decoder")

State = tuple[Any, ...]
"""One entry per layer of :meth:`TAAEEncoder.layers` / :meth:`TAAEDecoder.layers`: a tensor (conv tails) or a
:class:`taae.nn.kv_cache.StackState` (a transformer stack's clock and KV caches); every tensor is batch-first."""


# -- helpers ---------------------------------------------------------------------------------------------------

def _layers(model: nn.Module, side: str) -> list[tuple[str, nn.Module]]:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    config = getattr(model, "config", None)
    if not getattr(config, "causal", False):
        window = getattr(config, "window", None)
        raise ValueError(f"streaming needs a causal TAAE (TAAEConfig causal: true); this {type(model).__name__} "
                         f"is not causal{f' (window {list(window)})' if window else ''}, so its output depends on "
                         "future input: use Codec.encode / Codec.decode for offline coding")
    # Identities (stride-1 stages of the official layout, identity_stride1) have nothing to stream.
    layers = [(f"{side}.{name}", layer) for name, layer in getattr(model, side).layers()
              if not isinstance(layer, nn.Identity)]
    for name, layer in layers:
        if not (hasattr(layer, "step") and hasattr(layer, "init_state")):
            raise TypeError(f"{name} ({type(layer).__name__}) has no streaming step")
    return layers


def _leaves(tree: Any) -> list[Tensor]:
    if isinstance(tree, Tensor):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    raise TypeError(f"a streaming state holds tensors and tuples of them, got {type(tree).__name__}")


def _rebuild(tree: Any, leaves) -> Any:
    """``tree`` with its tensors replaced, in order, by those of the iterator ``leaves``."""
    if isinstance(tree, Tensor):
        return next(leaves)
    rebuilt = [_rebuild(item, leaves) for item in tree]
    return type(tree)(*rebuilt) if hasattr(tree, "_fields") else type(tree)(rebuilt)


_SIGNATURES: weakref.WeakKeyDictionary[nn.Module, list[torch.Size]] = weakref.WeakKeyDictionary()


def _signature(layer: nn.Module) -> list[torch.Size]:
    """Shapes (without the batch axis) of a layer's state tensors, computed once per layer."""
    if layer not in _SIGNATURES:
        _SIGNATURES[layer] = [t.shape[1:] for t in _leaves(layer.init_state(0))]
    return _SIGNATURES[layer]


def _check_state(layers: list[tuple[str, nn.Module]], state: State | None, side: str) -> int:
    """Raise unless ``state`` is a ``side`` state of this model; returns its batch size."""
    if state is None:
        raise TypeError(f"no {side} state: create one with init_state(model, {side!r}, batch_size) (or use "
                        "codec.streaming(batch_size)) before the first chunk")
    if not isinstance(state, tuple) or len(state) != len(layers):
        count = len(state) if isinstance(state, (tuple, list)) else type(state).__name__
        raise ValueError(f"not a {side} state of this model: expected a tuple of {len(layers)} layer states, got "
                         f"{count} (a state from init_state(model, {side!r}, batch_size) is needed)")
    batch = None
    for (name, layer), layer_state in zip(layers, state):
        expected, got = _signature(layer), _leaves(layer_state)
        if len(expected) != len(got) or any(e != g.shape[1:] for e, g in zip(expected, got)):
            shapes = [tuple(g.shape) for g in got]
            raise ValueError(f"not a {side} state of this model: {name} expects tensors shaped "
                             f"{[('B', *e) for e in expected]}, got {shapes}")
        for tensor in got:
            batch = tensor.shape[0] if batch is None else batch
            if tensor.shape[0] != batch:
                raise ValueError(f"{side} state: {name} holds {tensor.shape[0]} items, other layers {batch}")
    return 0 if batch is None else batch


def _run(layers: list[tuple[str, nn.Module]], x: Tensor, state: State) -> tuple[Tensor, State]:
    new_state = []
    with parametrize.cached():  # weight norm computed once per chunk, not once per use
        for (_, layer), layer_state in zip(layers, state):
            x, layer_state = layer.step(x, layer_state)
            new_state.append(layer_state)
    return x, tuple(new_state)


def _check_chunk(model: nn.Module, chunk: Tensor, batch: int) -> Tensor:
    if not isinstance(chunk, Tensor) or not chunk.is_floating_point():
        raise TypeError(f"a chunk must be a float tensor, got {getattr(chunk, 'dtype', type(chunk).__name__)}")
    wav = chunk.unsqueeze(1) if chunk.dim() == 2 else chunk
    if wav.dim() != 3 or wav.shape[1] != 1 or wav.shape[0] != batch:
        raise ValueError(f"a chunk must be (B={batch}, 1, T) or (B={batch}, T), got {tuple(chunk.shape)}")
    hop = model.hop_length
    if wav.shape[-1] == 0 or wav.shape[-1] % hop:
        raise ValueError(f"a chunk of {wav.shape[-1]} samples is not a whole number of frames: streaming takes "
                         f"multiples of {hop} samples ({1000 * hop / model.sample_rate:g} ms at "
                         f"{model.sample_rate} Hz); buffer the input to whole frames")
    return wav


def _item_mask(items: int | Sequence[int] | Tensor, batch_size: int) -> Tensor:
    if isinstance(items, Tensor) and items.dtype == torch.bool:
        if items.shape != (batch_size,):
            raise ValueError(f"a boolean reset mask must have shape ({batch_size},), got {tuple(items.shape)}")
        return items
    indices = [int(items)] if isinstance(items, int) or (isinstance(items, Tensor) and items.dim() == 0) \
        else [int(i) for i in items]
    bad = [i for i in indices if not 0 <= i < batch_size]
    if bad:
        raise ValueError(f"reset items {bad} are out of range for a batch of {batch_size} streams")
    mask = torch.zeros(batch_size, dtype=torch.bool)
    mask[indices] = True
    return mask


# -- the functional form ---------------------------------------------------------------------------------------

def init_state(model: nn.Module, side: str, batch_size: int) -> State:
    """A fresh streaming state of ``side`` ("encoder" or "decoder") for ``batch_size`` streams (zeros)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return tuple(layer.init_state(batch_size) for _, layer in _layers(model, side))


def reset_state(state: State, items: int | Sequence[int] | Tensor) -> State:
    """``state`` with the streams ``items`` (indices or a (B,) boolean mask) restarted; the others unchanged."""
    leaves = _leaves(state)
    if not leaves:
        return state
    mask = _item_mask(items, leaves[0].shape[0])
    fresh = (torch.where(mask.to(t.device).view(-1, *[1] * (t.dim() - 1)), torch.zeros_like(t), t) for t in leaves)
    return _rebuild(state, iter(fresh))


@torch.no_grad()
def encode_step(model: nn.Module, chunk: Tensor, state: State, preset: str | None = None) -> tuple[Tensor, State]:
    """Encode the next chunk of every stream.

    Args:
        model: a causal TAAE.
        chunk: (B, 1, n·hop) or (B, n·hop) samples at the model's rate, n >= 1 whole frames (any n per call).
        state: from :func:`init_state` (side "encoder") or the previous call.
        preset: the model's preset name (``None``: native).

    Returns:
        ``(tokens (B, K, n) int64, the new state)``; the tokens equal ``model.encode`` of the whole signal, but
        for a digit whose latent lies within float rounding of a boundary (see the module docstring).
    """
    latent, state = latent_step(model, chunk, state)
    return model.tokens_from_latent(latent, preset), state


@torch.no_grad()
def latent_step(model: nn.Module, chunk: Tensor, state: State) -> tuple[Tensor, State]:
    """The first half of :func:`encode_step`: the encoder's latent before tanh (B, D, n) float32 and the new state.

    It equals ``model.encode_unbounded`` of the whole signal to float rounding (the order in which each chunk's
    sums accumulate differs), which ``benchmarks/streaming_tokens.py`` measures.
    """
    layers = _layers(model, "encoder")
    batch = _check_state(layers, state, "encoder")
    wav = _check_chunk(model, chunk, batch)
    weight = next(model.encoder.parameters())
    x, state = _run(layers, patch(wav.to(weight.device, weight.dtype), model.config.patch_size), state)
    return x.float(), state


@torch.no_grad()
def decode_step(model: nn.Module, tokens: Tensor, state: State, preset: str | None = None) -> tuple[Tensor, State]:
    """Decode the next frames of every stream.

    Args:
        model: a causal TAAE.
        tokens: (B, K, n) integer tokens of ``preset``, n >= 1 frames.
        state: from :func:`init_state` (side "decoder") or the previous call.
        preset: as in :func:`encode_step`.

    Returns:
        ``(audio (B, 1, n·hop), the new state)``; the audio equals ``model.decode`` of all tokens, frame by frame.
    """
    layers = _layers(model, "decoder")
    batch = _check_state(layers, state, "decoder")
    if not isinstance(tokens, Tensor) or tokens.dim() != 3 or tokens.shape[0] != batch or tokens.shape[-1] == 0:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be (B={batch}, K, n) with n >= 1 frames, got {shape}")
    x, state = _run(layers, model.codes_from_tokens(tokens.to(torch.int64), preset), state)
    wav = unpatch(x)
    return (torch.tanh(wav) if model.config.output_tanh else wav), state


def algorithmic_latency(model: nn.Module, chunk_frames: int = 1) -> float:
    """Seconds from a sample's arrival to the earliest time its decoded sample can exist, compute aside: the chunk
    must fill (``chunk_frames`` frames); a causal TAAE looks no further ahead (0 s of look-ahead)."""
    _layers(model, "encoder")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    return chunk_frames * model.hop_length / model.sample_rate


# -- the session -----------------------------------------------------------------------------------------------

class StreamingSession:
    """Encoder and decoder states for ``batch_size`` streams; use as ``with streaming(model, B) as s: …``.

    ``encode`` and ``decode`` advance independently (decode-only use, e.g. tokens from a language model, needs no
    encoding). Outside the ``with`` block the session holds no state, and using it raises ``TypeError``.
    """

    def __init__(self, model: nn.Module, batch_size: int = 1, preset: str | None = None):
        _layers(model, "encoder")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model = model
        self.batch_size = batch_size
        if preset is not None and preset not in model.presets():
            raise ValueError(f"unknown preset {preset!r}; known presets: {list(model.presets())}")
        self.preset = preset
        self._states: dict[str, State] | None = None

    def __enter__(self) -> StreamingSession:
        if self._states is not None:
            raise TypeError("this streaming session is already open")
        self._states = {side: init_state(self.model, side, self.batch_size) for side in SIDES}
        return self

    def __exit__(self, *exc) -> None:
        self._states = None

    def _state(self, side: str) -> State:
        if self._states is None:
            raise TypeError(f"streaming {side} state used outside its `with` block: write "
                            "`with codec.streaming(batch_size) as s: s.encode(chunk)`")
        return self._states[side]

    def encode(self, chunk: Tensor) -> Tensor:
        """(B, 1, n·hop) or (B, n·hop) samples → tokens (B, K, n) int64."""
        tokens, self._states["encoder"] = encode_step(self.model, chunk, self._state("encoder"), self.preset)
        return tokens

    def decode(self, tokens: Tensor) -> Tensor:
        """tokens (B, K, n) → audio (B, 1, n·hop)."""
        audio, self._states["decoder"] = decode_step(self.model, tokens, self._state("decoder"), self.preset)
        return audio

    def reset(self, items: int | Sequence[int] | Tensor) -> None:
        """Restart the streams ``items`` (indices or a (B,) boolean mask) in the encoder and the decoder."""
        for side in SIDES:
            self._states[side] = reset_state(self._state(side), items)

    def latency(self, chunk_frames: int = 1) -> float:
        """:func:`algorithmic_latency` in seconds for chunks of ``chunk_frames`` frames."""
        return algorithmic_latency(self.model, chunk_frames)


def streaming(model: nn.Module, batch_size: int = 1, preset: str | None = None) -> StreamingSession:
    """A :class:`StreamingSession` for a causal TAAE (``with streaming(model, 2, "700bps") as s: …``)."""
    return StreamingSession(model, batch_size, preset)

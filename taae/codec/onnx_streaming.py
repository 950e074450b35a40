"""ONNX export of a causal TAAE's streaming step, with its state as explicit inputs and outputs, and a streaming
session that runs the step in ONNX Runtime.

Shape legend: B batch (streams), n frames in a chunk, hop samples per frame, D latent dim, L state leaves.

    encoder_step.onnx   chunk (B, 1, n·hop), state_in_0 … state_in_{L−1}
                          ─patch → the encoder's layers, one step each─► latent (B, D, n), state_out_0 … state_out_{L−1}
    decoder_step.onnx   codes (B, D, n), state_in_0 … state_in_{L−1}
                          ─the decoder's layers, one step each → unpatch (→ tanh)─► wav (B, 1, n·hop), state_out_…

The state is :func:`taae.codec.streaming.init_state`'s tree flattened in order (:func:`taae.codec.streaming._leaves`):
per
layer, a conv's input or overlap tail (B, C, k − s), or a transformer stack's clock (B,) int64 and its KV caches
(B, H, left, Dh), keys then values, block by block. The session keeps that tree as torch tensors, so
``reset(item)`` is :func:`taae.codec.streaming.reset_state` for both runtimes, and the token math (tanh, FSQ, residual
presets) around the step stays the PyTorch code (:func:`taae.codec.streaming.encode_step` / ``decode_step`` call the
same
``tokens_from_latent`` / ``codes_from_tokens``). B and n are dynamic; every other state axis is fixed by the model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from taae.codec.streaming import (
    SIDES,
    State,
    StreamingSession,
    _check_chunk,
    _check_state,
    _layers,
    _leaves,
    _rebuild,
    _run,
    init_state,
)
from taae.models.taae import patch, unpatch

__all__ = ["OnnxStreamingSession", "export_steps", "step_file"]


def step_file(side: str) -> str:
    """The file name of a side's step: ``encoder_step.onnx`` or ``decoder_step.onnx``."""
    return f"{side}_step.onnx"


class _Step(nn.Module):
    """One side's streaming step over flat state leaves, in the order of :func:`taae.codec.streaming._leaves`."""

    def __init__(self, model: nn.Module, side: str):
        super().__init__()
        self.model, self.side = model, side
        self.template = init_state(model, side, 1)  # the tree the leaves rebuild into

    def forward(self, x: Tensor, *leaves: Tensor) -> tuple[Tensor, ...]:
        state = _rebuild(self.template, iter(leaves))
        layers = _layers(self.model, self.side)
        if self.side == "encoder":  # (B, 1, n·hop) → (B, D, n)
            y, state = _run(layers, patch(x, self.model.config.patch_size), state)
            y = y.float()
        else:  # (B, D, n) → (B, 1, n·hop)
            y, state = _run(layers, x, state)
            y = unpatch(y)
            y = torch.tanh(y) if self.model.config.output_tanh else y
        return (y, *_leaves(state))


def export_steps(model: nn.Module, folder: str | Path) -> dict[str, int]:
    """Write ``encoder_step.onnx`` and ``decoder_step.onnx`` for a causal TAAE ``model`` (a CPU copy in eval mode
    with plain weights, :func:`taae.codec.onnx_files.plain_copy`); returns the number of state leaves of each side."""
    folder = Path(folder)
    batch = torch.export.Dim("batch", max=4096)
    frames = torch.export.Dim("frames", min=1, max=1 << 20)  # not "N": sympy reads that name as a function
    counts = {}
    for side in SIDES:
        leaves = _leaves(init_state(model, side, 2))
        x = (torch.zeros(2, 1, 3 * model.hop_length) if side == "encoder"
             else torch.zeros(2, model.config.latent_dim, 3))
        x_axes = {0: batch, 2: model.hop_length * frames} if side == "encoder" else {0: batch, 2: frames}
        names = [f"state_in_{i}" for i in range(len(leaves))]
        outs = [f"state_out_{i}" for i in range(len(leaves))]
        x_name, y_name = ("chunk", "latent") if side == "encoder" else ("codes", "wav")
        with torch.no_grad():
            torch.onnx.export(_Step(model, side).eval(), (x, *leaves), str(folder / step_file(side)), dynamo=True,
                              input_names=[x_name, *names], output_names=[y_name, *outs],
                              dynamic_shapes=(x_axes, tuple({0: batch} for _ in leaves)))
        counts[side] = len(leaves)
    return counts


class OnnxStreamingSession(StreamingSession):
    """:class:`taae.codec.streaming.StreamingSession` whose encoder and decoder steps run in ONNX Runtime sessions
    (``{"encoder": …, "decoder": …}``, from ``encoder_step.onnx`` / ``decoder_step.onnx``); the checks, the token
    math and the state tree are the PyTorch session's."""

    def __init__(self, model: nn.Module, sessions: dict, batch_size: int = 1, preset: str | None = None):
        super().__init__(model, batch_size, preset)
        self.sessions = sessions

    def _step(self, side: str, x: Tensor, state: State) -> tuple[Tensor, State]:
        session = self.sessions[side]
        names = [i.name for i in session.get_inputs()]
        leaves = _leaves(state)
        if len(names) != 1 + len(leaves):
            raise ValueError(f"{step_file(side)} takes {len(names) - 1} state tensors but this model's {side} state "
                             f"has {len(leaves)}: export the ONNX files from this model")
        feed = {names[0]: x.detach().to("cpu", torch.float32).contiguous().numpy()}
        feed.update({name: leaf.detach().cpu().contiguous().numpy() for name, leaf in zip(names[1:], leaves)})
        out = [torch.from_numpy(array) for array in session.run(None, feed)]
        device = leaves[0].device if leaves else x.device
        return out[0].to(x.device), _rebuild(state, (t.to(device) for t in out[1:]))

    @torch.no_grad()
    def encode(self, chunk: Tensor) -> Tensor:
        """(B, 1, n·hop) or (B, n·hop) samples → tokens (B, K, n) int64, as :meth:`StreamingSession.encode`."""
        state = self._state("encoder")
        batch = _check_state(_layers(self.model, "encoder"), state, "encoder")
        wav = _check_chunk(self.model, chunk, batch)
        latent, self._states["encoder"] = self._step("encoder", wav, state)
        return self.model.tokens_from_latent(latent, self.preset)

    @torch.no_grad()
    def decode(self, tokens: Tensor) -> Tensor:
        """tokens (B, K, n) → audio (B, 1, n·hop), as :meth:`StreamingSession.decode`."""
        state = self._state("decoder")
        batch = _check_state(_layers(self.model, "decoder"), state, "decoder")
        if not isinstance(tokens, Tensor) or tokens.dim() != 3 or tokens.shape[0] != batch or tokens.shape[-1] == 0:
            shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ValueError(f"tokens must be (B={batch}, K, n) with n >= 1 frames, got {shape}")
        codes = self.model.codes_from_tokens(tokens.to(torch.int64), self.preset)
        audio, self._states["decoder"] = self._step("decoder", codes, state)
        return audio

"""A second device on a CPU-only machine, to catch tensors that do not follow the model's device.

``VirtualDevice`` is a ``TorchFunctionMode`` that pretends the tensors it tracks (a model's parameters and buffers,
the inputs, and everything computed from them) live on another device, ``xpu`` (never really used: every tensor
stays in CPU memory), while every other tensor is on ``cpu``. Inside the mode the rules are CUDA's:

- an op whose tensor arguments include a tracked tensor and an untracked one of at least one dimension raises
  ``StrayDeviceError`` (CUDA: "Expected all tensors to be on the same device"); untracked 0-dim tensors may mix,
  as CPU scalars may with CUDA tensors;
- ``t.device`` of a tracked tensor reads ``xpu``, so ``torch.zeros(n, device=x.device)`` and ``y.to(x.device)``
  create tracked tensors, while a factory call without a device, ``.cpu()`` or ``.to("cpu")`` gives a CPU one;
- ``.numpy()`` of a tracked tensor raises, as it does for a CUDA tensor.

So a module built per call (its buffers made by ``torch.tensor`` on the CPU), a submodule kept in a plain dict
(``model.to()`` never reaches it) or a stray ``.cpu()`` fails here exactly where it would fail on a GPU. Tracking is
kept for the life of each tensor, across modes, so a tensor cached on the virtual device (a mask keyed by device)
stays on it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

VIRTUAL = torch.device("xpu")
_ON_VIRTUAL = WeakTensorKeyDictionary()
_DEVICE_GET = torch.Tensor.device.__get__


class StrayDeviceError(RuntimeError):
    """A tensor on the CPU met one on the model's (virtual) device."""


def _is_virtual(device) -> bool:
    return device is not None and torch.device(device).type == VIRTUAL.type


def _rewrite_devices(func, args: tuple, kwargs: dict) -> tuple[tuple, dict, bool | None]:
    """Replace a virtual device argument by ``cpu``; returns (args, kwargs, True/False if a device was given)."""
    target = None
    if "device" in kwargs and kwargs["device"] is not None:
        target = _is_virtual(kwargs["device"])
        if target:
            kwargs = {**kwargs, "device": "cpu"}
    if func is torch.Tensor.to:
        new_args = list(args)
        for i, a in enumerate(args[1:], start=1):
            if isinstance(a, (str, torch.device)):
                target = _is_virtual(a)
                new_args[i] = "cpu" if target else a
            elif isinstance(a, torch.Tensor):
                target = a in _ON_VIRTUAL
        args = tuple(new_args)
    if func in (torch.Tensor.cpu,):
        target = False
    return args, kwargs, target


class VirtualDevice(TorchFunctionMode):
    """Track ``tensors`` (and modules' parameters and buffers) as being on :data:`VIRTUAL` while the mode is on."""

    def __init__(self, *tracked: nn.Module | torch.Tensor | Iterable[torch.Tensor]):
        super().__init__()
        for item in tracked:
            self.track(item)

    @staticmethod
    def track(item) -> None:
        if isinstance(item, nn.Module):
            item = [*item.parameters(), *item.buffers()]
        elif isinstance(item, torch.Tensor):
            item = [item]
        for t in item:
            _ON_VIRTUAL[t] = True

    @staticmethod
    def is_on_virtual(t: torch.Tensor) -> bool:
        return t in _ON_VIRTUAL

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func == _DEVICE_GET:
            return VIRTUAL if args[0] in _ON_VIRTUAL else func(*args)
        if func is torch.Tensor.cuda:
            raise StrayDeviceError("Tensor.cuda() inside device-generic code: take the device from the input")
        if func is torch.Tensor.numpy and args[0] in _ON_VIRTUAL:
            raise StrayDeviceError("Tensor.numpy() of a tensor on the device: move it to the CPU first")
        args, kwargs, target = _rewrite_devices(func, args, kwargs)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on = [t for t in tensors if t in _ON_VIRTUAL]
        if on and target is None:
            off = [t for t in tensors if t not in _ON_VIRTUAL and t.dim() > 0]
            if off:
                shapes = [tuple(t.shape) for t in off]
                raise StrayDeviceError(
                    f"{getattr(func, '__qualname__', func)}: tensors of shapes {shapes} are on the CPU but others "
                    f"are on {VIRTUAL} (a tensor built without the input's device, or not moved by .to())"
                )
        out = func(*args, **kwargs)
        if target is not None and isinstance(out, torch.Tensor) and (out in _ON_VIRTUAL) != target:
            out = out.view_as(out)  # `.to()` returned its input (no real move): a new tensor on the other device
        if target or (target is None and on):
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    _ON_VIRTUAL[t] = True
        return out

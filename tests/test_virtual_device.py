"""The virtual second device of tests/virtual_device.py catches the bugs it is there for, and only those."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.virtual_device import StrayDeviceError, VirtualDevice


class PerCall(nn.Module):
    """The bug class: a table built on the CPU inside the call."""

    def forward(self, x):
        return x * torch.tensor([1.0, 2.0])


class FollowsInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.tensor([1.0, 2.0]), persistent=False)

    def forward(self, x):
        ramp = torch.arange(2, device=x.device)
        return (x * self.table + ramp + torch.zeros_like(x)).to(x.device) * torch.tensor(3.0)


class PlainDict(nn.Module):
    """The other half of the bug class: a submodule ``model.to()`` never reaches."""

    def __init__(self):
        super().__init__()
        self.held = {"table": FollowsInput()}

    def forward(self, x):
        return self.held["table"](x)


def test_code_that_follows_the_input_passes():
    model, x = FollowsInput(), torch.randn(3, 2)
    with VirtualDevice(model, x):
        out = model(x)
        assert out.device.type == "xpu" and VirtualDevice.is_on_virtual(out)
        back = out.cpu()
        assert back.device.type == "cpu" and not VirtualDevice.is_on_virtual(back)
        assert back.numpy().shape == (3, 2)
    torch.testing.assert_close(out, model(x))


@pytest.mark.parametrize("module", [PerCall(), PlainDict()], ids=["built-per-call", "plain-dict"])
def test_stray_tensors_fail_as_on_cuda(module):
    x = torch.randn(3, 2)
    with VirtualDevice(module, x), pytest.raises(StrayDeviceError, match=r"shapes \[\(2,\)\] are on the CPU"):
        module(x)


def test_moving_to_the_cpu_midway_fails_and_numpy_of_a_device_tensor_fails():
    w, x = nn.Parameter(torch.randn(2, 2)), torch.randn(3, 2)
    with VirtualDevice(w, x):
        with pytest.raises(StrayDeviceError):
            x.cpu() @ w
        with pytest.raises(StrayDeviceError, match="numpy"):
            x.numpy()
        with pytest.raises(StrayDeviceError, match="cuda"):
            x.cuda()
        assert VirtualDevice.is_on_virtual(torch.zeros(2, device=x.device) + x)

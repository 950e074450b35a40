"""Decisions every rank must take together under DDP: a step skipped on one rank is skipped on all.

With manual optimisation each backward all-reduces gradients, so a rank that skips a backward while the others
run it leaves them waiting in the all-reduce forever; a rank that steps while another skips makes the replicas
drift apart. One all-reduced flag (MIN over ranks) per decision keeps them in lockstep.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def finite_on_all_ranks(*values: Tensor) -> bool:
    """True iff every value is finite on every rank (one MIN all-reduce of a flag when distributed)."""
    ok = torch.stack([torch.isfinite(v.detach()).all() for v in values]).all()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        flag = ok.to(torch.int32)  # on the values' device: gloo reduces CPU tensors, NCCL CUDA ones
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = flag.bool()
    return bool(ok)

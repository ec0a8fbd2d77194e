"""One process or many: the same training code under `torchrun`.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE (and MASTER_ADDR/PORT); without them this is a
single process. Backend: NCCL when the process has a GPU, gloo on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def pick_device(requested: str | None, local_rank: int = 0) -> torch.device:
    if requested and requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(requested_device: str | None = None) -> Context:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return Context(rank, world, local_rank, device)


@contextmanager
def process_group(requested_device: str | None = None) -> Iterator[Context]:
    """setup(), then the group torn down however the body ends. After a clean end every rank
    waits for the others first: rank 0 holds the rendezvous store, and a rank that tore down
    and exited while another was still finishing its last collective can take that one down
    with it (a CI run saw rank 1 abort at exit, once in many). After an error, no wait: the
    other ranks may never arrive."""
    context = setup(requested_device)
    clean = False
    try:
        yield context
        clean = True
    finally:
        if context.active and dist.is_initialized():
            if clean:
                dist.barrier()
            dist.destroy_process_group()


def all_reduce_sum(context: Context, tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, in place (a no-op for one process); returns the tensor."""
    if context.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(context: Context) -> None:
    if context.active:
        dist.barrier()


def any_rank(context: Context, flag: bool) -> bool:
    """True when any rank says so (e.g. Ctrl-C reached only some), so all stop together."""
    if not context.active:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)

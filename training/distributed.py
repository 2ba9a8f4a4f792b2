"""Data-parallel training across the GPUs of one worker, launched by ``torchrun``.

``torchrun --nproc-per-node N -m training.run ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; ``from_env`` joins them into one process group (NCCL on
CUDA, Gloo on the CPU) and returns a ``DistContext``. The training loop then:

- wraps the model in ``DistributedDataParallel``, which averages gradients across ranks;
- draws the same global batch of ``batch_size`` rows on every rank (``BatchOrder`` is a pure
  function of the step) and trains each rank on its own ``rank::world_size`` slice, so a run on
  N ranks follows the same data as a run on one;
- lets rank 0 alone decide to stop (``agree``), write checkpoints and the model, report
  progress and validate; the others wait at the barriers.

BatchNorm normalises each rank's slice by that slice's own statistics (no ``SyncBatchNorm``);
the running statistics are rank 0's, which DDP broadcasts to every rank before each forward
pass (``broadcast_buffers``), and rank 0's are what the checkpoints and the model keep.
Without ``WORLD_SIZE`` > 1, ``from_env`` returns None and the loop runs as one process.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This rank's slice of one global batch."""
        return rows[self.rank :: self.world_size]

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of ``tensor`` over all ranks (every rank gets it)."""
        out = tensor.clone()
        torch_dist.all_reduce(out, op=torch_dist.ReduceOp.SUM)
        return out / self.world_size

    def agree(self, code: int, device: torch.device) -> int:
        """Rank 0's ``code``, on every rank: one decision for all (stop, and why)."""
        t = torch.tensor([code], dtype=torch.int64, device=device)
        torch_dist.broadcast(t, src=0)
        return int(t.item())

    def barrier(self) -> None:
        torch_dist.barrier()


def from_env(device: str | None = None) -> DistContext | None:
    """Join the process group torchrun describes in the environment; None for one process.

    ``device`` is the training device (``TrainConfig.device``): NCCL for ``cuda``, Gloo for
    anything else; None picks by whether CUDA is available. (A CPU run on a machine with GPUs
    needs Gloo: NCCL cannot reduce CPU tensors.)
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not torch_dist.is_initialized():
        cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
        backend = "nccl" if cuda else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        torch_dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local)


def rank_device(ctx: DistContext | None, device: str) -> torch.device:
    """The device of this rank: its own GPU under CUDA, else ``device`` as given."""
    d = torch.device(device)
    if ctx is not None and d.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return d


def wrap(model: nn.Module, ctx: DistContext | None, device: torch.device) -> nn.Module:
    """``model`` inside ``DistributedDataParallel`` when there are several ranks."""
    if ctx is None:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shutdown(ctx: DistContext | None) -> None:
    """Leave the process group while the interpreter is whole.

    A ``DistributedDataParallel`` model sits in reference cycles, so its reducer (which holds
    the process group) may otherwise survive until interpreter teardown, and a Gloo group
    freed then aborts the process ("terminate called without an active exception") after a
    run that succeeded. Collecting first frees it here, before the group is destroyed.
    """
    if ctx is not None and torch_dist.is_initialized():
        gc.collect()
        torch_dist.destroy_process_group()

"""Choosing a worker's device from the queues it consumes: ``gpuN`` means CUDA device N."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

GPU_QUEUE = re.compile(r"gpu(\d+)")


def gpu_index(queues: Iterable[str]) -> int | None:
    """The GPU number of the first ``gpuN`` queue, or None when there is none."""
    for q in queues:
        m = GPU_QUEUE.fullmatch(q)
        if m:
            return int(m.group(1))
    return None


def device_for_queues(queues: Iterable[str]) -> str:
    """``cuda:N`` for a ``gpuN`` worker when that GPU exists, else ``cpu``.

    ``RINGRIFT_DEVICE`` overrides the choice (a container that sees only its own GPU calls it
    ``cuda:0`` whatever its queue). Imports torch, so call it only in the worker's child
    process: CUDA must never be touched before the fork.
    """
    override = os.environ.get("RINGRIFT_DEVICE")
    if override:
        return override
    index = gpu_index(queues)
    if index is None:
        return "cpu"
    import torch

    if torch.cuda.is_available() and index < torch.cuda.device_count():
        return f"cuda:{index}"
    return "cpu"

"""What this worker process is bound to; set once per child process by ``bootstrap``."""

from __future__ import annotations

QUEUES: tuple[str, ...] = ()
DEVICE: str = "cpu"

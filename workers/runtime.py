"""What this worker process is bound to; set once per child process by ``bootstrap``."""

from __future__ import annotations

QUEUES: tuple[str, ...] = ()
DEVICE: str = "cpu"

# The suffix of a worker's own queue (Celery's worker_direct): no device, no shared work.
DIRECT_SUFFIX = ".dq2"

"""``ringrift.health.ping``: which worker, queues and device answered (status and tests)."""

from __future__ import annotations

import os
import socket
from typing import Any

from ringrift.celery import app
from workers import runtime


@app.task(name="ringrift.health.ping", bind=True)
def ping(self: Any) -> dict[str, Any]:
    return {
        "hostname": self.request.hostname or socket.gethostname(),
        "queues": list(runtime.QUEUES),
        "device": runtime.DEVICE,
        "pid": os.getpid(),
        "task_id": self.request.id,
    }

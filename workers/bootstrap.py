"""Worker start-up: bring the ledger's schema up to date and remember the consumed queues in the
parent, bind the device in each child.

The parent process never imports torch; each prefork child picks its device from its queues
(``gpu0`` -> ``cuda:0`` when present, else CPU) in ``worker_process_init``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import celeryd_after_setup, worker_process_init

from workers import runtime
from workers.devices import device_for_queues

log = logging.getLogger(__name__)
QUEUES_ENV = "RINGRIFT_WORKER_QUEUES"


@celeryd_after_setup.connect
def remember_queues(sender: Any = None, instance: Any = None, **_: Any) -> None:
    consumed = instance.app.amqp.queues.consume_from if instance is not None else {}
    # the worker's own direct queue (worker_direct) names no device and no shared work
    queues = sorted(q for q in consumed if not q.endswith(runtime.DIRECT_SUFFIX))
    os.environ[QUEUES_ENV] = ",".join(queues)
    runtime.QUEUES = tuple(queues)


@celeryd_after_setup.connect
def ensure_ledger(sender: Any = None, instance: Any = None, **_: Any) -> None:
    """Bring the ledger's schema up to date before any task runs: a worker started by hand
    against a new database (or after an upgrade) needs nothing run first. Concurrent workers
    take turns (``ringrift.store.db.migrate``)."""
    from ringrift.infra.settings import Settings
    from ringrift.store import ensure_schema

    ensure_schema(Settings.from_env().database_url)


@worker_process_init.connect
def bind_device(**_: Any) -> None:
    queues = tuple(q for q in os.environ.get(QUEUES_ENV, "").split(",") if q)
    runtime.QUEUES = queues
    runtime.DEVICE = device_for_queues(queues)
    import torch

    if runtime.DEVICE.startswith("cuda"):
        torch.cuda.set_device(runtime.DEVICE)
    # One worker process per core: torch's own thread pool would make them wait on each other
    # (about 10x slower on a busy 2-core machine). RINGRIFT_TORCH_THREADS overrides.
    torch.set_num_threads(int(os.environ.get("RINGRIFT_TORCH_THREADS", "1")))
    log.info("worker process %d bound to %s (queues %s)", os.getpid(), runtime.DEVICE, queues)

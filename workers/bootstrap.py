"""Worker start-up: bring the ledger's schema up to date and remember the consumed queues in the
parent, bind the device in each child.

The parent process never imports torch; each prefork child picks its device from its queues
(``gpu0`` -> ``cuda:0`` when present, else CPU) in ``worker_process_init``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import redis
from celery.signals import celeryd_after_setup, task_postrun, task_prerun, worker_process_init

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
    if instance is not None:
        _forget_running(instance.app.conf.broker_url, instance.hostname, queues)


def _forget_running(broker_url: str, node: str, queues: list[str]) -> None:
    """A worker that starts under a node name runs nothing yet: entries an earlier process of
    that name left (it was killed mid-task) no longer make its queues look busy."""
    from ringrift.infra.queues import RUNNING, running_field

    try:
        r = redis.Redis.from_url(broker_url, socket_connect_timeout=5)
        mine = running_field(node, "")
        for q in queues:
            stale = [f for f in r.hkeys(RUNNING + q) if _str(f).startswith(mine)]
            if stale:
                r.hdel(RUNNING + q, *stale)
    except (redis.RedisError, ValueError) as exc:  # not a Redis broker, or not up yet
        log.warning("could not clear %s's running entries: %s", node, exc)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _running_entry(task: Any) -> tuple[str, str] | None:
    queue = (task.request.delivery_info or {}).get("routing_key")
    if not queue:
        return None
    from ringrift.infra.queues import RUNNING, running_field

    return RUNNING + queue, running_field(task.request.hostname, os.getpid())


@task_prerun.connect
def mark_running(task: Any = None, **_: Any) -> None:
    """Note in the broker which queue this process runs a task from, and since when, so stage
    tasks are sent where they would start soonest (``ringrift.infra.queues.pick``)."""
    entry = _running_entry(task) if task is not None else None
    if entry is not None:
        try:
            _redis().hset(*entry, str(time.time()))
        except (redis.RedisError, ValueError) as exc:  # routing is a preference: it runs anyway
            log.warning("could not mark %s running: %s", task.name, exc)


@task_postrun.connect
def unmark_running(task: Any = None, **_: Any) -> None:
    entry = _running_entry(task) if task is not None else None
    if entry is not None:
        try:
            _redis().hdel(*entry)
        except (redis.RedisError, ValueError) as exc:
            log.warning("could not clear %s's running mark: %s", task.name, exc)


def _redis() -> redis.Redis:
    from ringrift.infra.service import redis_client

    return redis_client()


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

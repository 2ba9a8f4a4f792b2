"""Which queues exist and which to use: GPU work goes to ``gpuN`` queues, other work spreads
over every consumed queue, least backlog first.

Messages carry a priority. On Redis each queue is a list per priority step (the bare name for
priority 0, ``<queue>:<step>`` for the others) and a worker takes from the lowest step first, so
Redis priorities run backwards: 0 is served first. Selfplay, which the scheduler sends to keep
every worker busy, goes at ``SELFPLAY_PRIORITY``; the stages a generation waits on (export,
training, evaluation, promotion) go at the default 0 and overtake any selfplay waiting."""

from __future__ import annotations

import os
import time
from typing import Any

from workers.devices import gpu_index
from workers.runtime import DIRECT_SUFFIX

_cache: tuple[float, dict[str, int]] = (0.0, {})
CACHE_SECONDS = 30.0


def queue_consumers(app: Any, refresh: bool = False) -> dict[str, int]:
    """Per queue some live worker consumes, how many workers consume it; each worker's own
    direct queue aside (asked of the workers; cached briefly)."""
    global _cache
    now = time.monotonic()
    if refresh or now - _cache[0] > CACHE_SECONDS or not _cache[1]:
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
        counts: dict[str, int] = {}
        for queues in replies.values():
            for q in queues:
                if not q["name"].endswith(DIRECT_SUFFIX):
                    counts[q["name"]] = counts.get(q["name"], 0) + 1
        _cache = (now, dict(sorted(counts.items())))
    return dict(_cache[1])


def consumed_queues(app: Any, refresh: bool = False) -> list[str]:
    """Queues some live worker consumes (see ``queue_consumers``)."""
    return list(queue_consumers(app, refresh))


def live_workers(app: Any) -> list[str]:
    """The node names (``name@host``) of the workers that answer now."""
    replies = app.control.inspect(timeout=1.0).ping() or {}
    return sorted(replies)


def gpu_queues(app: Any) -> list[str]:
    return [q for q in consumed_queues(app) if gpu_index([q]) is not None]


SELFPLAY_PRIORITY = 9  # the last of the default steps (0, 3, 6, 9): served after everything


def _steps(app: Any) -> tuple[list[int], str]:
    options = app.conf.broker_transport_options or {}
    return list(options.get("priority_steps", [0, 3, 6, 9])), str(options.get("sep", "\x06\x16"))


def queue_keys(app: Any, queue: str) -> list[str]:
    """The Redis lists that hold ``queue``'s waiting messages, one per priority step."""
    steps, sep = _steps(app)
    return [queue if step == 0 else f"{queue}{sep}{step}" for step in steps]


def queue_of_key(app: Any, key: str) -> str:
    """The queue a Redis list belongs to (``queue_keys`` backwards)."""
    steps, sep = _steps(app)
    name, found, step = key.rpartition(sep)
    return name if found and step.isdigit() and int(step) in steps else key


def backlogs(app: Any, queues: list[str]) -> dict[str, int]:
    """Messages waiting in each of ``queues``, every priority counted (one round trip)."""
    with app.connection_for_write() as conn:
        pipe = conn.default_channel.client.pipeline()
        keys = {q: queue_keys(app, q) for q in queues}
        for q in queues:
            for key in keys[q]:
                pipe.llen(key)
        sizes = iter(pipe.execute())
        return {q: sum(int(next(sizes)) for _ in keys[q]) for q in queues}


def backlog(app: Any, queue: str) -> int:
    return backlogs(app, [queue])[queue]


RUNNING = "ringrift:running:"  # + queue: a hash, worker process -> when its task from there began
RUNNING_STALE_SECONDS = 24 * 3600  # an entry this old outlived its worker (killed with no cleanup)


def running_field(node: str, pid: int | str) -> str:
    """A worker process's field in the ``RUNNING`` hashes (``gpu0@host:1234``; with pid "",
    the prefix of all that node's fields)."""
    return f"{node}:{pid}"


def _this_task_field() -> str | None:
    """This process's field while it runs a task: a task that sends the next stage is about to
    end, so its own queue is not busy on its account."""
    from celery import current_task

    node = getattr(getattr(current_task, "request", None), "hostname", None)
    return running_field(node, os.getpid()) if node else None


def stage_loads(app: Any, queues: list[str]) -> dict[str, tuple[float, float]]:
    """How soon each queue would start a stage task sent now: (stage tasks waiting or running
    there per consuming worker, when its oldest running task began). Selfplay waiting does not
    count (stages overtake it); a task that began earlier is taken to end sooner."""
    consumers = queue_consumers(app)
    steps, _ = _steps(app)
    with app.connection_for_write() as conn:
        pipe = conn.default_channel.client.pipeline()
        for q in queues:
            for key, step in zip(queue_keys(app, q), steps, strict=True):
                if step < SELFPLAY_PRIORITY:
                    pipe.llen(key)
            pipe.hgetall(RUNNING + q)
        replies = iter(pipe.execute())
    now, me = time.time(), _this_task_field()
    loads = {}
    for q in queues:
        waiting = sum(int(next(replies)) for step in steps if step < SELFPLAY_PRIORITY)
        began = [float(v) for f, v in next(replies).items() if _str(f) != me]
        began = [t for t in began if now - t < RUNNING_STALE_SECONDS]
        per_worker = (waiting + len(began)) / max(1, consumers.get(q, 1))
        loads[q] = (per_worker, min(began, default=now))
    return loads


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def pick(app: Any, n: int, *, gpu_only: bool = False) -> list[str]:
    """``n`` queue choices for stage tasks, spread round-robin from the queue that would start
    one soonest (``stage_loads``)."""
    candidates = gpu_queues(app) if gpu_only else consumed_queues(app)
    if gpu_only and not candidates:
        candidates = consumed_queues(app)  # a CPU-only cluster still trains (slowly)
    if not candidates:
        candidates = [str(app.conf.task_default_queue)]
    loads = stage_loads(app, candidates)
    ordered = sorted(candidates, key=lambda q: loads[q])
    return [ordered[i % len(ordered)] for i in range(n)]

"""Which queues exist and which to use: GPU work goes to ``gpuN`` queues, other work spreads
over every consumed queue, least backlog first."""

from __future__ import annotations

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


def backlog(app: Any, queue: str) -> int:
    with app.connection_for_write() as conn:
        return int(conn.default_channel.client.llen(queue))


def pick(app: Any, n: int, *, gpu_only: bool = False) -> list[str]:
    """``n`` queue choices, spread round-robin from the least backlogged queue."""
    candidates = gpu_queues(app) if gpu_only else consumed_queues(app)
    if gpu_only and not candidates:
        candidates = consumed_queues(app)  # a CPU-only cluster still trains (slowly)
    if not candidates:
        candidates = [str(app.conf.task_default_queue)]
    ordered = sorted(candidates, key=lambda q: backlog(app, q))
    return [ordered[i % len(ordered)] for i in range(n)]

"""Messages workers took from their queues and have not acknowledged, read from the broker.

Tasks are acknowledged late and a worker prefetches one message per process, so a message sits
in the Redis transport's ``unacked`` hash only while its task runs, or for the moment between a
worker taking it and the task beginning. One that sits there long after, while its task never
began (no heartbeat, no result), was taken by a worker that died first: the broker would hand it
back only after its visibility timeout (hours). The reconciler reads these to send such a task
again at once (``pipeline.state``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import redis

UNACKED = "unacked"  # kombu's Redis transport: delivery tag -> [message, exchange, routing key]
UNACKED_INDEX = "unacked_index"  # delivery tag -> when it was taken (epoch seconds)


def _taken(r: redis.Redis, older_than: float) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    """The headers and args of every message a worker took more than ``older_than`` seconds
    ago and has not acknowledged. A message this cannot read is skipped: it is not one of ours
    to resend."""
    cutoff = time.time() - older_than
    tags: list[bytes] = r.zrangebyscore(UNACKED_INDEX, "-inf", cutoff)  # type: ignore[assignment]
    for tag in tags:
        raw = r.hget(UNACKED, tag)
        if raw is None:  # acknowledged meanwhile
            continue
        try:
            message = json.loads(raw)[0]
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            headers, args = dict(message["headers"]), list(json.loads(body)[0])
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        yield headers, args


def taken_before(r: redis.Redis, older_than: float) -> list[tuple[str, list[Any]]]:
    """``(task name, args)`` of every message taken ``older_than`` seconds ago or more and not
    acknowledged."""
    return [(str(headers.get("task")), args) for headers, args in _taken(r, older_than)]


def task_ids_taken_before(r: redis.Redis, older_than: float) -> set[str]:
    """The task ids of the same messages."""
    return {str(headers.get("id")) for headers, _ in _taken(r, older_than)}

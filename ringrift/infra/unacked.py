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
from typing import Any

import redis

UNACKED = "unacked"  # kombu's Redis transport: delivery tag -> [message, exchange, routing key]
UNACKED_INDEX = "unacked_index"  # delivery tag -> when it was taken (epoch seconds)


def taken_before(r: redis.Redis, older_than: float) -> list[tuple[str, list[Any]]]:
    """``(task name, args)`` of every message a worker took more than ``older_than`` seconds
    ago and has not acknowledged. A message this cannot read is skipped: it is not one of
    ours to resend."""
    cutoff = time.time() - older_than
    out = []
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
            args = json.loads(body)[0]
            out.append((str(message["headers"]["task"]), list(args)))
        except (ValueError, KeyError, IndexError, TypeError):
            continue
    return out

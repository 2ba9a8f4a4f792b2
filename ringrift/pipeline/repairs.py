"""What the reconciler repaired, counted in Redis for ``ringrift health``, and the beat's own
heartbeat (each tick writes the time it ran).

Repairs: a stage started again after its claim lapsed (its task was lost, or its worker died),
an evaluation match sent again after its worker died, a shard the tick collected because its
own collect never ran. Each is logged where it happens and counted here.
"""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)

REPAIRS = "ringrift:repairs"  # a hash: what -> how many times
BEAT_KEY = "ringrift:beat"  # the time of the beat's last tick

STAGE_RESTARTED = "stages restarted after their claim lapsed"
MATCH_RESENT = "evaluation matches sent again after their worker died"
SHARD_COLLECTED = "shards collected by the tick (their collect never ran)"


def count(r: redis.Redis, what: str, n: int = 1) -> None:
    r.hincrby(REPAIRS, what, n)


def repairs(r: redis.Redis) -> dict[str, int]:
    raw = r.hgetall(REPAIRS)
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in sorted(raw.items())
    }


def beat(r: redis.Redis) -> None:
    r.set(BEAT_KEY, time.time())

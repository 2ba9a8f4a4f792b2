"""Heartbeats of the members of a dispatched task group (the shards of a selfplay batch, the
matches of an evaluation): how the reconciler tells a member whose worker died from one that is
still working or still queued, and sends only the dead one again, at once.

A member task marks itself started when it begins and keeps an ``alive`` key fresh while it
works; it clears both when it ends, whether it stored its result or raised. A member that is
marked started, has no fresh ``alive`` key and left no result in the ledger lost its worker
(kill -9, power, a cut network). Redis would hand its message back only after the broker's
visibility timeout (hours), so the reconciler sends it again under the same name instead; its
seeds and names come from its arguments, so the new attempt does the same work.

A member that raised is sent again the same way after a back-off, when its caller asked for
that (``retry_failed_after``): evaluation chunks, training segments and the one-task stages do.
One rule serves them all (``retry_delay``): 30 s for a failure that may pass (a database or
broker away for a moment, a full disk), 10 minutes for a ``ValueError`` (bad input, a bad file:
it meets the same error until the quarantine or a person mends it). A member that never
started (still queued, or reserved by a worker that then died) has no marker: the stage claim's
time-out is what starts that batch again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

log = logging.getLogger(__name__)

STARTED = "ringrift:started:"  # + member id: JSON {host, pid, at}; cleared when it ends
ALIVE = "ringrift:alive:"  # + member id: the same, renewed while the member works
DISPATCHED = "ringrift:dispatched:"  # + stage key: the group the reconciler last sent
STARTED_SECONDS = 7 * 24 * 3600  # outlives any task; cleared by the member itself


@dataclass(frozen=True)
class Member:
    """One task of a dispatched group: its id (its result's name), task name and arguments."""

    id: str
    task: str
    args: list[Any]


@dataclass(frozen=True)
class Dispatch:
    """A group the reconciler sent for one stage key, and the chord callback it closes with."""

    stage: str
    members: list[Member]
    callback: Member

    def to_json(self) -> str:
        return json.dumps(
            {
                "stage": self.stage,
                "members": [m.__dict__ for m in self.members],
                "callback": self.callback.__dict__,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Dispatch:
        d = json.loads(raw)
        return cls(d["stage"], [Member(**m) for m in d["members"]], Member(**d["callback"]))


def record_dispatch(r: redis.Redis, key: str, dispatch: Dispatch, seconds: int) -> None:
    """Remember what was sent for ``key`` as long as its claim lasts."""
    r.set(DISPATCHED + key, dispatch.to_json(), ex=seconds)


def dispatched(r: redis.Redis, key: str) -> Dispatch | None:
    raw = r.get(DISPATCHED + key)
    return None if raw is None else Dispatch.from_json(raw)


def forget_dispatch(r: redis.Redis, key: str) -> None:
    r.delete(DISPATCHED + key)


def is_lost(r: redis.Redis, member_id: str) -> bool:
    """Started, and its worker stopped beating (the caller checks there is no result)."""
    return bool(r.exists(STARTED + member_id)) and not r.exists(ALIVE + member_id)


def take_over(r: redis.Redis, member_id: str) -> bool:
    """Clear a lost member's start marker; true for exactly one caller, who sends it again."""
    return int(r.delete(STARTED + member_id)) == 1


def holder(r: redis.Redis, member_id: str) -> dict[str, Any] | None:
    """Who is working on ``member_id`` now (host, pid), if anyone is beating."""
    raw = r.get(ALIVE + member_id)
    return None if raw is None else json.loads(raw)


FAILED_RETRY_SECONDS = 30  # a failure that may pass: a database or broker away, a full disk
BAD_INPUT_RETRY_SECONDS = 600  # a ValueError: bad input or a bad file, until it is mended


def retry_delay(error: BaseException, transient: int = FAILED_RETRY_SECONDS) -> int:
    """How long a stage task that raised ``error`` waits before it is started again: the one
    rule for every stage (see the module doc). ``transient`` is the wait for a failure that may
    pass; a ``ValueError`` waits at least ``BAD_INPUT_RETRY_SECONDS``."""
    if isinstance(error, ValueError):
        return max(transient, BAD_INPUT_RETRY_SECONDS)
    return transient


@contextmanager
def beating(
    r: redis.Redis, member_id: str, seconds: int, host: str, retry_failed_after: int | None = None
) -> Iterator[None]:
    """Mark ``member_id`` started and keep its ``alive`` key fresh (renewed every third of
    ``seconds``) until the block ends; then clear both. With ``retry_failed_after``, a block
    that raises leaves its start marker and an ``alive`` key that lapses after
    ``retry_delay(error, retry_failed_after)`` seconds: the member then reads as lost, so the
    reconciler sends it again instead of its stage waiting out its claim."""
    value = json.dumps({"host": host, "pid": os.getpid(), "at": time.time()})
    r.set(ALIVE + member_id, value, ex=seconds)
    r.set(STARTED + member_id, value, ex=STARTED_SECONDS)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(seconds / 3):
            try:
                r.set(ALIVE + member_id, value, ex=seconds)
            except redis.RedisError as exc:  # the broker is away; the next beat may land
                log.warning("heartbeat of %s not renewed: %s", member_id, exc)

    beat = threading.Thread(target=renew, name=f"heartbeat {member_id}", daemon=True)
    beat.start()
    failed: BaseException | None = None
    try:
        yield
    except BaseException as e:
        failed = e
        raise
    finally:
        stop.set()
        beat.join()
        try:
            if failed is not None and retry_failed_after is not None:
                r.set(ALIVE + member_id, value, ex=retry_delay(failed, retry_failed_after))
            else:
                r.delete(STARTED + member_id, ALIVE + member_id)
        except redis.RedisError as exc:  # the broker is away: its markers lapse by themselves
            log.warning("heartbeat of %s not cleared: %s", member_id, exc)

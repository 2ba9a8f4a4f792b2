"""Message priorities on the real broker: the stages a generation waits on overtake the selfplay
that keeps workers busy, and every priority counts toward a queue's backlog."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from ringrift.infra.queues import SELFPLAY_PRIORITY, backlogs, queue_keys, queue_of_key
from tests.celery_harness import celery_env, point_app_at, worker

QUEUE = "gpu7"  # no other test's worker consumes it


def test_a_stage_task_overtakes_waiting_selfplay(redis_url: str, tmp_path: Path) -> None:
    env = celery_env(redis_url, tmp_path)
    point_app_at(env)
    from ringrift.celery import app
    from ringrift.tasks.health import ping

    r = redis.Redis.from_url(env["RINGRIFT_BROKER_URL"])
    r.delete(*queue_keys(app, QUEUE))
    low = [ping.apply_async(queue=QUEUE, priority=SELFPLAY_PRIORITY) for _ in range(3)]
    high = ping.apply_async(queue=QUEUE)  # sent last, at the default priority

    assert backlogs(app, [QUEUE, "gpu8"]) == {QUEUE: 4, "gpu8": 0}
    lists = {key: r.llen(key) for key in queue_keys(app, QUEUE)}
    assert lists[QUEUE] == 1 and sum(lists.values()) == 4
    assert {queue_of_key(app, key) for key in lists} == {QUEUE}
    assert queue_of_key(app, "cpu") == "cpu"

    with worker(env, QUEUE, "prio", tmp_path):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(x.ready() for x in [*low, high]):
            time.sleep(0.2)
    order = sorted([*low, high], key=lambda x: x.date_done)
    assert order[0].id == high.id, [x.date_done for x in order]
    assert backlogs(app, [QUEUE]) == {QUEUE: 0}

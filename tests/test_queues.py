"""Message priorities and routing on the real broker: the stages a generation waits on overtake
the selfplay that keeps workers busy, every priority counts toward a queue's backlog, and a stage
task goes to the queue that would start it soonest."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import redis

from ringrift.infra.queues import (
    RUNNING,
    SELFPLAY_PRIORITY,
    backlogs,
    queue_keys,
    queue_of_key,
    running_field,
    stage_loads,
)
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


def test_stage_tasks_go_where_they_would_start_soonest(redis_url: str, tmp_path: Path) -> None:
    """Waiting selfplay does not delay a stage task, a running task does; of two busy queues
    the one whose task began first is taken to free up first."""
    env = celery_env(redis_url, tmp_path)
    point_app_at(env)
    from ringrift.celery import app
    from ringrift.tasks.health import ping

    r = redis.Redis.from_url(env["RINGRIFT_BROKER_URL"])
    queues = ["gpu7", "gpu8", "gpu9"]
    for q in queues:
        r.delete(*queue_keys(app, q), RUNNING + q)
    now = time.time()
    try:
        for _ in range(3):
            ping.apply_async(queue="gpu7", priority=SELFPLAY_PRIORITY)
        r.hset(RUNNING + "gpu8", running_field("gpu8@elsewhere", 11), str(now - 5))
        r.hset(RUNNING + "gpu9", running_field("gpu9@elsewhere", 12), str(now - 50))
        loads = stage_loads(app, queues)
        assert loads["gpu7"][0] == 0 and loads["gpu8"][0] == loads["gpu9"][0] == 1
        assert sorted(queues, key=lambda q: loads[q]) == ["gpu7", "gpu9", "gpu8"]
        ping.apply_async(queue="gpu7")  # a stage task waiting counts
        r.hset(RUNNING + "gpu9", running_field("gpu9@elsewhere", 13), str(now - 86400 * 2))
        loads = stage_loads(app, queues)
        assert loads["gpu7"][0] == 1 and loads["gpu9"][0] == 1, "a two-day-old entry is stale"
        assert sorted(queues, key=lambda q: loads[q]) == ["gpu9", "gpu8", "gpu7"]
    finally:
        for q in queues:
            r.delete(*queue_keys(app, q), RUNNING + q)


def test_a_worker_marks_what_it_runs_and_forgets_a_killed_predecessors_marks(
    redis_url: str, tmp_path: Path
) -> None:
    env = celery_env(redis_url, tmp_path)
    point_app_at(env)
    from ringrift.tasks.health import ping

    r = redis.Redis.from_url(env["RINGRIFT_BROKER_URL"])
    r.delete(RUNNING + QUEUE)
    node = f"marks@{socket.gethostname()}"
    r.hset(RUNNING + QUEUE, running_field(node, 999999), str(time.time()))  # killed mid-task
    r.hset(RUNNING + QUEUE, running_field("other@host", 5), str(time.time()))
    try:
        with worker(env, QUEUE, "marks", tmp_path):
            answer = ping.apply_async(queue=QUEUE).get(timeout=60)
            deadline = time.monotonic() + 10  # the mark goes just after the result is stored
            while time.monotonic() < deadline and r.hlen(RUNNING + QUEUE) > 1:
                time.sleep(0.05)
            log = (tmp_path / "worker-marks.log").read_text()
            fields = {f.decode() for f in r.hkeys(RUNNING + QUEUE)}
        assert answer["hostname"] == node, answer
        assert fields == {running_field("other@host", 5)}, (fields, log[-2000:])
        assert "could not mark" not in log and "could not clear" not in log
    finally:
        r.delete(RUNNING + QUEUE)

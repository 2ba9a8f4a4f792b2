"""A stage claim never guards work that is not queued or running: it is short until its work
is sent, it is dropped when sending fails, and a one-task stage whose worker was killed is
started again as soon as its heartbeat stops (a real Redis, real processes, a SQLite ledger)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from ringrift.infra.service import Service
from ringrift.pipeline.heartbeat import (
    ALIVE,
    BAD_INPUT_RETRY_SECONDS,
    FAILED_RETRY_SECONDS,
    STARTED,
    Dispatch,
    beating,
    record_dispatch,
    retry_delay,
)
from ringrift.pipeline.presets import preset
from ringrift.pipeline.repairs import STAGE_RESTARTED, repairs
from ringrift.pipeline.state import (
    CLAIM_PREFIX,
    SEND_SECONDS,
    Due,
    claim,
    confirm,
    drop,
    group_for,
    note_sent,
    reconcile,
    running_stage,
    single_task_id,
)
from tests.celery_harness import REPO
from tests.ledger_harness import ledger_service, redis_database
from tests.test_heartbeat import (
    ALL_CHUNKS,
    CONFIG,
    SECONDS,
    _beat,
    _evaluating,
    _record_match,
    _url,
)


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    with redis_database(redis_url, 13) as client:  # database 13 is this module's
        yield client


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    with ledger_service(tmp_path) as service:
        yield service


def test_a_claim_is_short_until_its_work_is_queued_and_only_its_taker_extends_or_drops_it(
    r: redis.Redis, svc: Service
) -> None:
    _evaluating(svc)
    [due] = reconcile(svc, r, CONFIG)
    assert due.claim is not None and due.claim_seconds == 600  # the tiny preset's
    assert 0 < r.ttl(CLAIM_PREFIX + due.key) <= SEND_SECONDS
    assert not confirm(r, due.key, "someone else's token", 600)
    assert r.ttl(CLAIM_PREFIX + due.key) <= SEND_SECONDS
    assert confirm(r, due.key, due.claim, due.claim_seconds)  # sent: it lasts the stage's time
    assert r.ttl(CLAIM_PREFIX + due.key) > SEND_SECONDS
    drop(r, due.key, "someone else's token")
    assert r.exists(CLAIM_PREFIX + due.key)
    drop(r, due.key, due.claim)  # what a failed send does
    assert not r.exists(CLAIM_PREFIX + due.key)
    [again] = reconcile(svc, r, CONFIG)
    assert again.key == due.key and again.claim != due.claim


def test_a_claim_has_one_taker(r: redis.Redis) -> None:
    first = claim(r, "square8_2p:0:export", 60)
    assert first is not None and claim(r, "square8_2p:0:export", 60) is None
    assert r.get(CLAIM_PREFIX + "square8_2p:0:export") == first.encode()


def _evaluation_sent(r: redis.Redis, svc: Service) -> Dispatch:
    """An evaluation due, claimed and sent: its chunks recorded as dispatched, its claim
    confirmed, as ``tasks.pipeline.start`` does."""
    _evaluating(svc)
    [due] = reconcile(svc, r, CONFIG)
    assert due.claim is not None
    group = group_for(due)
    record_dispatch(r, due.key, group, 600)
    confirm(r, due.key, due.claim, due.claim_seconds)
    return group


def _decide_due(r: redis.Redis, svc: Service) -> Due:
    """An evaluation with every chunk recorded: the gate's decision is due, and claimed."""
    candidate = _evaluating(svc)
    for opponent, first, _ in ALL_CHUNKS:
        _record_match(svc, candidate, opponent, first)
    [decide] = reconcile(svc, r, CONFIG)
    return decide


def test_a_one_task_stage_whose_worker_was_killed_starts_again_when_its_beat_stops(
    r: redis.Redis, svc: Service
) -> None:
    decide = _decide_due(r, svc)
    assert decide.stage == "decide" and decide.claim is not None
    confirm(r, decide.key, decide.claim, decide.claim_seconds)  # sent
    task_id = single_task_id(decide)
    assert task_id == decide.key
    worker = _beat(_url(r), task_id)  # the promote task at work, as running_stage beats
    assert reconcile(svc, r, CONFIG) == [], "a live task's stage is not started twice"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert r.exists(STARTED + task_id) and reconcile(svc, r, CONFIG) == []  # beat not lapsed
    time.sleep(SECONDS + 1.5)
    [again] = reconcile(svc, r, CONFIG)
    assert again.key == decide.key and again.claim not in (None, decide.claim)
    assert 0 < r.ttl(CLAIM_PREFIX + again.key) <= SEND_SECONDS
    assert repairs(r) == {STAGE_RESTARTED: 1}
    assert reconcile(svc, r, CONFIG) == [], "started again once"


def test_a_one_task_stage_taken_by_a_worker_that_died_before_starting_it_is_sent_again(
    r: redis.Redis, svc: Service
) -> None:
    decide = _decide_due(r, svc)
    assert decide.stage == "decide" and decide.claim_seconds == preset("tiny").pickup_seconds
    confirm(r, decide.key, decide.claim, decide.claim_seconds)  # sent, not yet begun
    assert 0 < r.ttl(CLAIM_PREFIX + decide.key) <= 60
    assert reconcile(svc, r, CONFIG) == [], "sent: it waits for a worker to take it"
    # A worker took the message and was killed before the task began: no heartbeat, and the
    # message waits out the broker's visibility timeout (hours). The claim's pickup time lapses
    # (shortened to a millisecond here) and the next tick sends the stage again.
    r.pexpire(CLAIM_PREFIX + decide.key, 1)
    time.sleep(0.05)
    [again] = reconcile(svc, r, CONFIG)
    assert again.key == decide.key and again.claim != decide.claim
    assert repairs(r) == {STAGE_RESTARTED: 1}
    confirm(r, again.key, again.claim, again.claim_seconds)
    with running_stage(svc, r, again.key):  # begun: the claim lasts the stage's claim_seconds
        assert 60 < r.ttl(CLAIM_PREFIX + again.key) <= preset("tiny").claim_seconds
        assert reconcile(svc, r, CONFIG) == []
    assert not r.exists(CLAIM_PREFIX + again.key)  # released when the body ends


# Send a task to a queue and take it as a worker does (unacknowledged), then hold it until killed.
_TAKE = """
import os, sys, json
os.environ["RINGRIFT_BROKER_URL"] = sys.argv[1]
from ringrift.celery import app
task, args = sys.argv[2], json.loads(sys.argv[3])
sent = app.send_task(task, args=args, queue="gpu0")
with app.connection_for_read() as conn:
    taken = conn.SimpleQueue("gpu0").get(timeout=10)
    print("taken", sent.id, flush=True)
    sys.stdin.read()
"""


def _taken_and_killed(r: redis.Redis, task: str, args: list[object]) -> str:
    """Send ``task`` and have a process take it as a worker does (unacknowledged), then SIGKILL
    that process before the task begins: no heartbeat, no acknowledgement. The task id."""
    taker = subprocess.Popen(
        [sys.executable, "-c", _TAKE, _url(r), task, json.dumps(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert taker.stdout is not None
    said, task_id = taker.stdout.readline().split()
    assert said == "taken"
    taker.send_signal(signal.SIGKILL)
    taker.wait()
    return task_id


def test_a_one_task_stage_taken_by_a_worker_that_died_is_found_in_the_broker_at_once(
    r: redis.Redis, svc: Service
) -> None:
    decide = _decide_due(r, svc)
    assert decide.claim is not None
    task_id = _taken_and_killed(
        r, "ringrift.promote.promote_model", [CONFIG, decide.generation, "the-candidate"]
    )
    confirm(r, decide.key, decide.claim, decide.claim_seconds)  # sent, as ``advance`` does
    note_sent(r, decide.key, task_id, decide.claim_seconds)
    assert reconcile(svc, r, CONFIG) == [], "taken under a heartbeat ago: it may be beginning"
    quick = replace(svc, settings=replace(svc.settings, task_heartbeat_seconds=1))
    time.sleep(1.2)
    assert r.ttl(CLAIM_PREFIX + decide.key) > 30, "its pickup window (60 s) has not lapsed"
    [again] = reconcile(quick, r, CONFIG)
    assert again.key == decide.key and again.claim not in (None, decide.claim)
    assert repairs(r) == {STAGE_RESTARTED: 1}
    confirm(r, again.key, again.claim, again.claim_seconds)
    assert reconcile(quick, r, CONFIG) == [], "sent again once: the stale copy is not the new one"


def test_a_chunk_taken_by_a_worker_that_died_before_it_began_is_sent_again(
    r: redis.Redis, svc: Service
) -> None:
    group = _evaluation_sent(r, svc)
    stranded = group.members[0]
    _taken_and_killed(r, stranded.task, list(stranded.args))
    assert reconcile(svc, r, CONFIG) == [], "taken under a heartbeat ago: it may be beginning"
    quick = replace(svc, settings=replace(svc.settings, task_heartbeat_seconds=1))
    time.sleep(1.2)
    [resend] = reconcile(quick, r, CONFIG)
    assert resend.stage == "resend" and [m.id for m in resend.detail["members"]] == [stranded.id]
    assert reconcile(quick, r, CONFIG) == [], "sent again once"


def test_one_retry_rule_for_every_stage_a_bad_input_waits_longer(r: redis.Redis) -> None:
    assert retry_delay(ConnectionError("away")) == FAILED_RETRY_SECONDS == 30
    assert retry_delay(OSError(28, "No space left on device")) == 30
    assert retry_delay(ValueError("a corrupt file")) == BAD_INPUT_RETRY_SECONDS == 600
    with pytest.raises(ValueError), beating(r, "bad-chunk", 5, "here", retry_failed_after=1):
        raise ValueError("a model that was set aside")
    assert r.exists(STARTED + "bad-chunk")  # it reads as lost, later: never left for good
    assert 590 < r.ttl(ALIVE + "bad-chunk") <= BAD_INPUT_RETRY_SECONDS
    with beating(r, "good-chunk", 5, "here", retry_failed_after=1):
        pass
    assert not r.exists(STARTED + "good-chunk") and not r.exists(ALIVE + "good-chunk")


def test_a_chunk_that_raised_is_sent_again_after_a_short_while(
    r: redis.Redis, svc: Service
) -> None:
    group = _evaluation_sent(r, svc)
    failed = group.members[0].id
    with pytest.raises(ConnectionError), beating(r, failed, 5, "here", retry_failed_after=1):
        raise ConnectionError("the database went away")  # the chunk's task raised
    assert reconcile(svc, r, CONFIG) == [], "not at once: the cause may still be there"
    time.sleep(1.5)
    [resend] = reconcile(svc, r, CONFIG)
    assert resend.stage == "resend" and [m.id for m in resend.detail["members"]] == [failed]
    assert reconcile(svc, r, CONFIG) == [], "sent again once"

"""A group member whose worker dies is sent again at once, and only it: heartbeats in a real
Redis, kept by real processes, one of them killed with SIGKILL; the reconciler reads them
against a SQLite ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ringrift.infra.service import Service
from ringrift.pipeline.heartbeat import ALIVE, STARTED, beating, dispatched, holder, record_dispatch
from ringrift.pipeline.repairs import MATCH_RESENT, STAGE_RESTARTED, repairs
from ringrift.pipeline.state import (
    CLAIM_PREFIX,
    Limits,
    group_for,
    in_flight,
    reconcile,
)
from ringrift.store import (
    ArtifactRef,
    record_artifact,
)
from ringrift.store.models import EvaluationMatch, Model, PipelineState, TrainingRun
from tests.celery_harness import REPO
from tests.ledger_harness import ledger_service, redis_database

CONFIG = "square8_2p"
# the tiny preset's first evaluation on square8: 8 games against each fixed opponent, in 4s
ALL_CHUNKS = [["random", 0, 4], ["random", 4, 4], ["heuristic", 0, 4], ["heuristic", 4, 4]]
SECONDS = 2  # heartbeat time-out in these tests

_BEAT = """
import sys, redis
from ringrift.pipeline.heartbeat import beating
r = redis.Redis.from_url(sys.argv[1])
with beating(r, sys.argv[2], int(sys.argv[3]), "test-host"):
    print("beating", flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills the process)
"""


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    with redis_database(redis_url, 9) as client:  # database 9 is this module's
        yield client


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    with ledger_service(tmp_path) as service:
        yield service


def _beat(url: str, member: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _BEAT, url, member, str(SECONDS)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "beating"
    return proc


def _url(r: redis.Redis) -> str:
    kw = r.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw['db']}"


def test_a_heartbeat_outlives_its_time_out_while_the_work_goes_on_and_clears_when_it_ends(
    r: redis.Redis,
) -> None:
    with beating(r, "member-a", 1, "here"):
        time.sleep(2.5)  # two and a half time-outs
        who = holder(r, "member-a")
        assert who is not None and (who["host"], who["pid"]) == ("here", os.getpid())
        assert r.exists(STARTED + "member-a")
    assert not r.exists(ALIVE + "member-a") and not r.exists(STARTED + "member-a")

    with pytest.raises(RuntimeError), beating(r, "member-b", 1, "here"):
        raise RuntimeError("the task failed")  # a failure is not a lost worker
    assert not r.exists(ALIVE + "member-b") and not r.exists(STARTED + "member-b")


def _evaluating(svc: Service, config: str = CONFIG) -> str:
    """Ledger rows of a configuration whose candidate is trained and due for evaluation."""
    candidate = f"model-{config}-g1"
    with svc.session() as s:
        s.add(PipelineState(config=config, preset="tiny", enabled=True, target_generations=1))
        for kind, name in (("dataset", f"dataset-{config}-g0"), ("model", candidate)):
            ref = ArtifactRef(name, kind, f"{kind}/{name}", "0" * 64, 1)
            record_artifact(s, ref, config)
        s.add(
            TrainingRun(
                id=f"run-{config}-g0",
                config=config,
                generation=0,
                dataset_artifact_id=f"dataset-{config}-g0",
                status="done",
                total_steps=1,
            )
        )
        s.flush()
        s.add(
            Model(
                id=candidate,
                config=config,
                generation=1,
                architecture="b4c64",
                encoder_version=1,
                artifact_id=candidate,
                training_run_id=f"run-{config}-g0",
            )
        )
        s.flush()
        run = s.get(TrainingRun, f"run-{config}-g0")
        assert run is not None
        run.result_model_id = candidate
    return candidate


def test_the_reconciler_sends_again_only_the_match_whose_worker_was_killed(
    r: redis.Redis, svc: Service
) -> None:
    candidate = _evaluating(svc)
    [due] = reconcile(svc, r, CONFIG)
    assert due.stage == "evaluate" and due.detail["matches"] == ALL_CHUNKS
    group = group_for(due)
    record_dispatch(r, due.key, group, 600)  # as tasks.pipeline.start does before sending
    dead, alive, *queued = (m.id for m in group.members)
    assert (dead, alive) == (f"eval-{candidate}/random@0", f"eval-{candidate}/random@4")
    assert queued == [f"eval-{candidate}/heuristic@0", f"eval-{candidate}/heuristic@4"]

    killed = _beat(_url(r), dead)
    working = _beat(_url(r), alive)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert r.exists(STARTED + dead), "a killed worker cannot clear its start marker"
        time.sleep(SECONDS + 1.5)  # the killed one's heartbeat lapses; the other keeps beating
        assert holder(r, alive) is not None
        [resend] = reconcile(svc, r, CONFIG)
        assert resend.stage == "resend"
        assert [m.id for m in resend.detail["members"]] == [dead]
        assert resend.detail["members"][0].args == group.members[0].args
        assert resend.detail["callback"] == group.callback
        assert r.ttl(CLAIM_PREFIX + due.key) > 500, "the stage claim is held for the new attempt"
        assert reconcile(svc, r, CONFIG) == [], "a lost member is sent again once"
        assert repairs(r) == {MATCH_RESENT: 1}  # `ringrift health` counts it
    finally:
        assert working.stdin is not None
        working.stdin.close()  # ends normally: its markers are cleared, nothing is lost
        working.wait(timeout=30)
    time.sleep(SECONDS + 0.5)
    assert reconcile(svc, r, CONFIG) == []

    # Every chunk recorded: the stage is free, and the decision is what is due next.
    for opponent, first, _ in ALL_CHUNKS:
        _record_match(svc, candidate, opponent, first)
    [decide] = reconcile(svc, r, CONFIG)
    assert decide.stage == "decide" and decide.detail == {"candidate_id": candidate}
    # ... and the evaluation's slot is free again for another configuration's evaluation
    assert not r.exists(CLAIM_PREFIX + due.key) and dispatched(r, due.key) is None
    assert in_flight(svc, r, "evaluate") == 0


def _record_match(svc: Service, candidate: str, opponent: str, first_game: int = 0) -> None:
    with svc.session() as s:
        s.add(
            EvaluationMatch(
                evaluation_id=f"eval-{candidate}",
                config=candidate.removeprefix("model-").rsplit("-", 1)[0],
                candidate_id=candidate,
                opponent=opponent,
                first_game=first_game,
                games=4,
                wins=4,
                losses=0,
                draws=0,
            )
        )


def test_evaluations_share_match_slots_first_come_first_served_and_a_lapsed_claim_is_counted(
    r: redis.Redis, svc: Service
) -> None:
    candidate = _evaluating(svc)
    other = _evaluating(svc, "hex8_2p")
    r.set(CLAIM_PREFIX + "square19_2p:3:evaluate", "another configuration evaluates")
    assert in_flight(svc, r, "evaluate") == 1  # claimed, its matches not yet recorded as sent

    # No room: both wait, in the order they came.
    assert reconcile(svc, r, "hex8_2p", Limits(eval_matches=1)) == []
    assert reconcile(svc, r, CONFIG, Limits(eval_matches=1)) == []
    with svc.session() as s:
        st = s.get(PipelineState, CONFIG)
        assert st is not None and st.stage == "evaluate: waits for a slot, 1 ahead"

    # Room for two chunks: the configuration that waited first takes them, though the tick
    # reconciles the other one first.
    assert reconcile(svc, r, CONFIG, Limits(eval_matches=3)) == []
    [first] = reconcile(svc, r, "hex8_2p", Limits(eval_matches=3))
    assert first.stage == "evaluate" and first.detail["matches"] == ALL_CHUNKS[:2]
    record_dispatch(r, first.key, group_for(first), 600)
    assert in_flight(svc, r, "evaluate") == 3

    # Room for one: the next evaluation starts with one chunk, and the rest follows once it
    # is in (a second claim of the same evaluation, not a repair).
    [due] = reconcile(svc, r, CONFIG, Limits(eval_matches=4))
    assert due.detail["matches"] == ALL_CHUNKS[:1]
    record_dispatch(r, due.key, group_for(due), 600)
    assert in_flight(svc, r, "evaluate") == 4
    _record_match(svc, other, "random")  # a match frees its slot when its result is in
    assert in_flight(svc, r, "evaluate") == 3
    assert reconcile(svc, r, CONFIG, Limits(eval_matches=4)) == []  # its match is still out
    _record_match(svc, candidate, "random")
    [rest] = reconcile(svc, r, CONFIG, Limits(eval_matches=4))
    # room for two: hex8_2p's second chunk and the square19_2p claim hold the other two
    assert rest.key == due.key and rest.detail["matches"] == ALL_CHUNKS[1:3]
    assert repairs(r) == {}

    r.delete(CLAIM_PREFIX + rest.key)  # the claim lapses with nothing done: its tasks were lost
    [again] = reconcile(svc, r, CONFIG, Limits(eval_matches=4))
    assert again.key == due.key and repairs(r) == {STAGE_RESTARTED: 1}

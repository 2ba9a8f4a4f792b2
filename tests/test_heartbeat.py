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
from ringrift.infra.settings import Settings
from ringrift.pipeline.heartbeat import ALIVE, STARTED, beating, dispatched, holder, record_dispatch
from ringrift.pipeline.state import CLAIM_PREFIX, group_for, reconcile, release_if_finished
from ringrift.store import (
    ArtifactRef,
    ArtifactStore,
    LocalCache,
    make_engine,
    migrate,
    record_artifact,
    session_factory,
)
from ringrift.store.models import PipelineState
from tests.celery_harness import REPO

CONFIG = "square8_2p"
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
    client = redis.Redis.from_url(f"{redis_url}/9")
    client.flushdb()  # the session's private Redis; database 9 is this module's
    yield client
    client.flushdb()


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    store = ArtifactStore(tmp_path / "artifacts")
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        artifact_root=store.root,
        cache_root=tmp_path / "cache",
    )
    yield Service(settings, engine, session_factory(engine), store, LocalCache(tmp_path, store))
    engine.dispose()


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


def test_the_reconciler_sends_again_only_the_member_whose_worker_was_killed(
    r: redis.Redis, svc: Service
) -> None:
    with svc.session() as s:
        s.add(PipelineState(config=CONFIG, preset="tiny", enabled=True, target_generations=1))
    [due] = reconcile(svc, r, CONFIG)
    assert due.stage == "selfplay" and due.detail["tasks"] == 2
    group = group_for(due)
    record_dispatch(r, due.key, group, 600)  # as tasks.pipeline.start does before sending
    dead, alive = (m.id for m in group.members)

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
    finally:
        assert working.stdin is not None
        working.stdin.close()  # ends normally: its markers are cleared, nothing is lost
        working.wait(timeout=30)
    time.sleep(SECONDS + 0.5)
    assert reconcile(svc, r, CONFIG) == []

    # Both shards stored: the stage is free for whatever comes next.
    with svc.session() as s:
        for m in group.members:
            record_artifact(s, ArtifactRef(m.id, "shard", f"shard/{m.id}", "0" * 64, 1), CONFIG)
    release_if_finished(svc, r, due.key)
    assert not r.exists(CLAIM_PREFIX + due.key) and dispatched(r, due.key) is None

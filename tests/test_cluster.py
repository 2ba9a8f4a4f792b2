"""A cluster whose hosts share nothing but the services: Redis, PostgreSQL and an S3 store.

Two worker "hosts" (each `celery -A ringrift worker -Q gpu0,cpu` with its own data dir, cache and
host name, no folder in common) and beat; square8_2p is started on the tiny preset through the
public API, as the README's manual cluster does. Two generations must finish, every artifact in
the store must verify, both hosts must have played selfplay, and both caches must hold the
promoted model.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from ringrift.localredis import LocalRedis
from ringrift.store import ArtifactRef, make_engine, session_factory
from ringrift.store.models import Artifact, Checkpoint, Game, PipelineState
from ringrift.store.s3 import S3ArtifactStore
from tests.celery_harness import REPO, beat, worker
from tests.conftest import S3_BUCKET
from tests.pg_harness import fresh_database
from tests.s3_harness import ACCESS_KEY, SECRET_KEY, client

HOSTS = ("east", "west")


@pytest.fixture
def postgres() -> Iterator[str]:
    with fresh_database("ringrift_cluster") as url:
        yield url.render_as_string(hide_password=False)


_START = """
from ringrift.tasks.pipeline import start_pipeline
print(start_pipeline.delay("square8_2p", preset="tiny", generations=2).get(timeout=120))
"""


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
            PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )

        def host_env(name: str) -> dict[str, str]:
            return {
                **services,
                "RINGRIFT_DATA_DIR": str(tmp_path / name),
                "RINGRIFT_CACHE_NAME": name,
            }

        with (
            worker(host_env("east"), "gpu0,cpu", "east", tmp_path),
            worker(host_env("west"), "gpu0,cpu", "west", tmp_path),
            beat(host_env("beat"), tmp_path),
        ):
            started = subprocess.run(
                [sys.executable, "-c", _START],
                cwd=REPO,
                env=host_env("client"),
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert started.returncode == 0, started.stderr
            engine = make_engine(postgres)
            sessions = session_factory(engine)
            deadline = time.monotonic() + 900
            while True:
                with sessions() as s:
                    st = s.get(PipelineState, "square8_2p")
                    if st is not None and st.generation >= 2:
                        best = st.best_model_id
                        break
                assert time.monotonic() < deadline, "two generations did not finish in 15 min"
                time.sleep(2)
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

    assert best is not None
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
    assert {"shard", "dataset", "model"} <= kinds
    for a in artifacts:
        store.read(ArtifactRef.from_row(a))  # raises ArtifactCorrupt on a mismatch
    for c in checkpoints:
        store.read(c.path, c.sha256)
    engine.dispose()

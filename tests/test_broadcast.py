"""A promoted model reaches every live worker host's cache, not one consumer per queue: two
workers consume the same queue from two data dirs with no folder in common, artifacts on S3."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ringrift.celery import app
from ringrift.store import make_engine, migrate, record_artifact, session_factory
from ringrift.store.models import Model
from ringrift.store.s3 import S3ArtifactStore
from tests.celery_harness import celery_env, point_app_at, worker
from tests.conftest import S3_BUCKET
from tests.s3_harness import ACCESS_KEY, SECRET_KEY, client

CONFIG = "square8_2p"


def _host_env(
    redis_url: str, root: Path, host: str, db_url: str, s3_url: str, endpoint: str
) -> dict[str, str]:
    env = celery_env(redis_url, root / host)
    env.update(
        RINGRIFT_CACHE_NAME=host,
        RINGRIFT_DATABASE_URL=db_url,
        RINGRIFT_ARTIFACT_URL=s3_url,
        RINGRIFT_S3_ENDPOINT=endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
    )
    return env


def _wait(what: str, ok: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.2)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def test_a_promoted_model_reaches_every_host_sharing_a_queue(
    redis_url: str, s3_endpoint: str, tmp_path: Path
) -> None:
    from ringrift.tasks.sync import broadcast_model, cached_models

    db_url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    migrate(db_url)
    s3_url = f"s3://{S3_BUCKET}/broadcast-{tmp_path.name}"
    store = S3ArtifactStore(s3_url, client=client(s3_endpoint))
    ref = store.put_bytes("model", b"promoted weights", name="model-square8_2p-g1", config=CONFIG)
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        record_artifact(s, ref)
        s.add(
            Model(
                id="model-square8_2p-g1",
                config=CONFIG,
                generation=1,
                architecture="b4c64",
                encoder_version=1,
                artifact_id=ref.id,
                status="promoted",
            )
        )
        s.commit()
    engine.dispose()

    hosts = {
        h: _host_env(redis_url, tmp_path, h, db_url, s3_url, s3_endpoint) for h in ("east", "west")
    }
    point_app_at(hosts["east"])
    with (
        worker(hosts["east"], "gpu0", "east", tmp_path),
        worker(hosts["west"], "gpu0", "west", tmp_path),
    ):
        _wait(
            "both workers",
            lambda: (
                {"east", "west"}
                <= {n.split("@")[0] for n in (app.control.inspect(timeout=1.0).ping() or {})}
            ),
        )
        sent = broadcast_model.apply_async(("model-square8_2p-g1",), queue="gpu0").get(timeout=60)
        assert {n.split("@")[0] for n in sent["workers"]} == {"east", "west"}
        for h in ("east", "west"):
            cached = tmp_path / h / "cache" / h / "model" / "model-square8_2p-g1"
            _wait(f"{h}'s cache", cached.exists)
            assert cached.read_bytes() == b"promoted weights"
        _wait("both hosts recorded", lambda: set(cached_models(CONFIG)) >= {"east", "west"})
        held = cached_models(CONFIG)
        assert {held[h]["model_id"] for h in ("east", "west")} == {"model-square8_2p-g1"}
    # no folder in common: each host's data dir holds only its own cache
    assert not (tmp_path / "east" / "cache" / "west").exists()
    assert not (tmp_path / "west" / "cache" / "east").exists()

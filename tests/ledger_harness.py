"""A service on a fresh SQLite ledger and folder store, and a private Redis database, for tests
that drive the pipeline's logic in this process (no worker)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from sqlalchemy.orm import Session

from ringrift.infra.service import Service
from ringrift.infra.settings import Settings
from ringrift.store import (
    ArtifactRef,
    ArtifactStore,
    LocalCache,
    make_engine,
    migrate,
    record_artifact,
    session_factory,
)
from ringrift.store.models import Model


@contextmanager
def ledger_service(folder: Path) -> Iterator[Service]:
    """A ``Service`` whose ledger, store and cache live in ``folder``."""
    url = f"sqlite:///{folder / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    store = ArtifactStore(folder / "artifacts")
    settings = Settings(
        data_dir=folder, database_url=url, artifact_root=store.root, cache_root=folder / "cache"
    )
    try:
        yield Service(settings, engine, session_factory(engine), store, LocalCache(folder, store))
    finally:
        engine.dispose()


@contextmanager
def redis_database(redis_url: str, db: int) -> Iterator[redis.Redis]:
    """Database ``db`` of the session's private Redis, empty before and after."""
    client = redis.Redis.from_url(f"{redis_url}/{db}")
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()


def add_model(
    s: Session,
    config: str,
    generation: int,
    *,
    status: str = "candidate",
    sha256: str | None = None,
    decision: str | None = None,
) -> str:
    """A model row ``model-<config>-g<generation>`` and its artifact's row (no file), whose
    weights' checksum is ``sha256`` (default: one per generation); returns the model id."""
    model_id = f"model-{config}-g{generation}"
    sha = sha256 or f"{generation:064x}"
    record_artifact(s, ArtifactRef(model_id, "model", f"model/{model_id}", sha, 1), config)
    s.add(
        Model(
            id=model_id,
            config=config,
            generation=generation,
            architecture="b4c64",
            encoder_version=1,
            artifact_id=model_id,
            status=status,
            decision=decision,
        )
    )
    s.flush()
    return model_id

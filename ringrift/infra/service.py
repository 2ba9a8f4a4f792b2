"""Per-process service resources: settings, the ledger engine, the artifact store, the cache.

Created lazily and once per process; a forked child starts over, because database connections
and pools must never cross a fork.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ringrift.infra.settings import Settings
from ringrift.store import ArtifactStore, LocalCache, Store
from ringrift.store.db import make_engine, session_factory


@dataclass
class Service:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: Store
    cache: LocalCache

    def working_dir(self, *parts: str) -> Path:
        """A folder for files a task builds before they are stored: inside the folder store
        (checkpoints then need no copy), or under this host's data dir when the store is
        remote."""
        base = self.store.root if isinstance(self.store, ArtifactStore) else self.settings.data_dir
        return base.joinpath(*parts)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise


def open_store(settings: Settings) -> Store:
    """The artifact store the settings name: the folder one, or S3 for ``s3://`` URLs."""
    if settings.artifact_url.startswith("s3://"):
        from ringrift.store.s3 import S3ArtifactStore

        return S3ArtifactStore(settings.artifact_url)
    return ArtifactStore(settings.artifact_root)


_current: Service | None = None
_redis: redis.Redis | None = None


def current() -> Service:
    global _current
    if _current is None:
        settings = Settings.from_env()
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # working files, caches
        engine = make_engine(settings.database_url)
        store = open_store(settings)
        _current = Service(
            settings, engine, session_factory(engine), store, LocalCache(settings.cache_root, store)
        )
    return _current


def redis_client() -> redis.Redis:
    """The broker's Redis, for claims and locks (``RINGRIFT_BROKER_URL``)."""
    global _redis
    if _redis is None:
        from ringrift.celery import app

        _redis = redis.Redis.from_url(str(app.conf.broker_url))
    return _redis


def _forget() -> None:
    global _current, _redis
    _current = None
    _redis = None


os.register_at_fork(after_in_child=_forget)

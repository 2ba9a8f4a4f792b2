"""Per-process service resources: settings, the ledger engine, the artifact store, the cache.

Created lazily and once per process; a forked child starts over, because database connections
and pools must never cross a fork.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ringrift.settings import Settings
from ringrift.store import ArtifactStore, LocalCache
from ringrift.store.db import make_engine, session_factory


@dataclass
class Service:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ArtifactStore
    cache: LocalCache

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


_current: Service | None = None
_redis: redis.Redis | None = None


def current() -> Service:
    global _current
    if _current is None:
        settings = Settings.from_env()
        engine = make_engine(settings.database_url)
        store = ArtifactStore(settings.artifact_root)
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

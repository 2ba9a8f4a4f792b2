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
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
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


def open_service(settings: Settings) -> Service:
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # working files, caches
    engine = make_engine(settings.database_url)
    store = open_store(settings)
    return Service(
        settings, engine, session_factory(engine), store, LocalCache(settings.cache_root, store)
    )


def current() -> Service:
    global _current
    if _current is None:
        _current = open_service(Settings.from_env())
    return _current


# How the service's own Redis calls (claims, leases, heartbeats) ride out a broker that is away
# for a while (a restart, a failover, a cut link): each call is tried again with backoff for
# about a minute before it fails, as Celery's own connection retries do.
BROKER_RETRIES = 16  # waits of 0.25, 0.5, 1, 2, 4, then 5 s each: 63 s in all


def patient_retry() -> Retry:
    return Retry(ExponentialBackoff(cap=5.0, base=0.25), BROKER_RETRIES)


_patient = True  # workers wait an outage out; a person's command answers at once


def answer_at_once() -> None:
    """This process serves a person (the ``ringrift`` command): its Redis calls fail at once
    when the broker is away, with the command's one-line error, instead of waiting a minute."""
    global _patient, _redis
    _patient, _redis = False, None


def redis_client() -> redis.Redis:
    """The broker's Redis, for claims and locks (``RINGRIFT_BROKER_URL``); in a worker its
    calls wait out an outage of up to a minute (``patient_retry``)."""
    global _redis
    if _redis is None:
        if not _patient:
            _redis = quick_redis_client()
            return _redis
        from ringrift.celery import app

        _redis = redis.Redis.from_url(
            str(app.conf.broker_url),
            socket_connect_timeout=5,
            socket_timeout=30,
            retry=patient_retry(),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
    return _redis


def quick_redis_client() -> redis.Redis:
    """The broker's Redis for a person's question (``ringrift health``): an outage is an answer
    at once, not a minute's wait."""
    from ringrift.celery import app

    return redis.Redis.from_url(
        str(app.conf.broker_url),
        socket_connect_timeout=3,
        socket_timeout=10,
        retry=Retry(ExponentialBackoff(), 0),
    )


def _forget() -> None:
    global _current, _redis
    _current = None
    _redis = None


os.register_at_fork(after_in_child=_forget)

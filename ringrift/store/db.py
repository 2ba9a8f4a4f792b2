"""Ledger connections, migrations, and the writes that must survive redelivery and races.

One machine uses a SQLite file (WAL mode, so readers never block the writer); a cluster points
``RINGRIFT_DATABASE_URL`` at PostgreSQL. SQLite is for one machine only: WAL needs shared memory,
so never put the ledger file on a network mount.

Engines belong to one process: create them after a worker forks (or call
``engine.dispose(close=False)`` in the child), never share a pooled connection across a fork.

Every helper here takes a ``Session`` and leaves the commit to the caller, so a task can make its
writes in one transaction.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, CursorResult, Engine, Insert, Table, create_engine, event, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ringrift.store.models import Game, PipelineState, utcnow

ENV_DATABASE_URL = "RINGRIFT_DATABASE_URL"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# How long a SQLite writer waits for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Key of the PostgreSQL advisory lock that serialises concurrent `migrate` calls ("ringrift").
_PG_MIGRATION_LOCK = 0x72696E6772696674


def database_url(data_dir: str | os.PathLike[str]) -> str:
    """``$RINGRIFT_DATABASE_URL`` if set, else the SQLite file ``<data_dir>/ledger.sqlite3``."""
    url = os.environ.get(ENV_DATABASE_URL)
    if url:
        return url
    return f"sqlite:///{Path(data_dir).expanduser().absolute() / 'ledger.sqlite3'}"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; bare ``postgresql://`` (and ``postgres://``) use the psycopg 3 driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def make_engine(url: str | URL, *, sqlite_foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """An engine for the ledger at ``url``.

    SQLite gets WAL mode, a busy timeout and enforced foreign keys on every connection, may be
    used from several threads, and its parent folder is created. PostgreSQL connections are
    checked before use, since a worker may hold its pool for days.
    """
    u = normalize_url(url)
    if u.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(u, **kwargs)

    database = u.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(u, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            _set_wal(cursor)
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if sqlite_foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    return engine


def _set_wal(cursor: Any) -> None:
    """Switch a SQLite file to WAL once. Connections racing on a new file can get "database is
    locked" from this pragma without the busy handler being consulted, so it is retried."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine``. Objects keep their values after commit, so a task can return them."""
    return sessionmaker(engine, expire_on_commit=False)


# --- migrations -------------------------------------------------------------------------------


def alembic_config(url: str | URL) -> Config:
    """An Alembic config for the packaged migrations, independent of the working directory.

    The URL travels in ``attributes`` (not the ini options), so a password with ``%`` in it
    needs no escaping. For a new revision::

        command.revision(alembic_config(url), message="...", autogenerate=True)
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = normalize_url(url).render_as_string(hide_password=False)
    return cfg


def _migration_engine(url: str | URL) -> Engine:
    u = normalize_url(url)
    if u.get_backend_name() != "sqlite":
        return make_engine(u)
    if u.database in (None, "", ":memory:"):
        raise ValueError(
            "migrate needs a SQLite file; an in-memory database lives in one connection"
        )
    # Foreign keys off while tables are rebuilt (batch migrations), checked after. BEGIN IMMEDIATE
    # makes the DDL transactional and takes the write lock at once, so concurrent migrations on one
    # file run one after the other (the second finds the schema current and does nothing).
    engine = make_engine(u, sqlite_foreign_keys=False)

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def migrate(url: str | URL, revision: str = "head") -> None:
    """Bring the ledger at ``url`` to ``revision`` (Alembic ``upgrade``); a no-op when current.

    Safe to call from every worker at start-up: concurrent calls are serialised (an advisory lock
    on PostgreSQL, the write lock on SQLite).
    """
    engine = _migration_engine(url)
    cfg = alembic_config(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            if conn.dialect.name == "sqlite":
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migration left rows with dangling foreign keys: {broken}")
    finally:
        engine.dispose()


def downgrade(url: str | URL, revision: str) -> None:
    """Alembic ``downgrade`` to ``revision`` ("base" drops everything); for tests and repairs."""
    engine = _migration_engine(url)
    cfg = alembic_config(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()


def ensure_schema(url: str | URL) -> None:
    """Make sure the ledger at ``url`` has the current schema (creating it if empty)."""
    migrate(url, "head")


# --- writes -----------------------------------------------------------------------------------


def insert_ignoring_duplicates(
    session: Session, table: Table, conflict_columns: list[str] | None = None
) -> Insert:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` for the session's database; the key is the
    primary key unless ``conflict_columns`` names a unique constraint's columns."""
    name = session.get_bind().dialect.name
    keys = conflict_columns or [c.name for c in table.primary_key.columns]
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
    raise NotImplementedError(f"the ledger runs on sqlite or postgresql, not {name}")


_GAME_TABLE = cast(Table, Game.__table__)
_GAME_COLUMNS = frozenset(c.key for c in _GAME_TABLE.columns)


def ingest_games(session: Session, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert the games whose ``id`` is not in the ledger yet; return how many were inserted.

    ``rows`` are dicts keyed by ``Game`` column names. A game already present (a redelivered
    collect, a shard seen twice) is skipped without comparing contents: ids are the producer's
    UUIDs. Within ``rows`` the first occurrence of an id wins.
    """
    unique: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        unknown = row.keys() - _GAME_COLUMNS
        if unknown:
            raise ValueError(f"game row {row.get('id')!r} has unknown columns {sorted(unknown)}")
        game_id = row.get("id")
        if not isinstance(game_id, str) or not game_id:
            raise ValueError(f"game row has no string id: {game_id!r}")
        unique.setdefault(game_id, row)
    if not unique:
        return 0
    stmt = insert_ignoring_duplicates(session, _GAME_TABLE).returning(_GAME_TABLE.c.id)
    # executemany with RETURNING: one id back per row actually inserted (both dialects batch it).
    inserted = session.execute(stmt, [dict(r) for r in unique.values()]).scalars().all()
    return len(inserted)


def cas_best_model(
    session: Session, config: str, expected_best_id: str | None, new_best_id: str
) -> bool:
    """Point ``config``'s best model at ``new_best_id`` if it is still ``expected_best_id``.

    One ``UPDATE ... WHERE best_model_id IS/= expected``: of two promotions racing from the same
    best model, exactly one wins. Bumps ``version``. Returns whether the pointer moved; False
    also when ``config`` has no pipeline state row. The caller commits.
    """
    current = (
        PipelineState.best_model_id.is_(None)
        if expected_best_id is None
        else PipelineState.best_model_id == expected_best_id
    )
    stmt = (
        update(PipelineState)
        .where(PipelineState.config == config, current)
        .values(
            best_model_id=new_best_id,
            version=PipelineState.version + 1,
            updated_at=utcnow(),
        )
        # "fetch" updates objects already loaded in this session from the rows the database
        # really changed; "evaluate" would trust their possibly stale in-memory values.
        .execution_options(synchronize_session="fetch")
    )
    result = cast(CursorResult[Any], session.execute(stmt))
    return result.rowcount == 1


__all__ = [
    "ENV_DATABASE_URL",
    "MIGRATIONS_DIR",
    "alembic_config",
    "cas_best_model",
    "database_url",
    "downgrade",
    "ensure_schema",
    "ingest_games",
    "insert_ignoring_duplicates",
    "make_engine",
    "migrate",
    "normalize_url",
    "session_factory",
]

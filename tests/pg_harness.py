"""A fresh PostgreSQL database on the machine's server, for tests; skipped when none answers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import URL, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from ringrift.store.db import normalize_url

PG_ADMIN_URL = os.environ.get(
    "RINGRIFT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def fresh_database(prefix: str) -> Iterator[URL]:
    """Create ``<prefix>_<pid>_<hex>``, yield its URL, drop it (closing its connections)."""
    admin_url = normalize_url(PG_ADMIN_URL)
    admin = create_engine(
        admin_url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as e:
        admin.dispose()
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        pytest.skip(f"PostgreSQL does not answer at {admin_url}: {reason}")
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

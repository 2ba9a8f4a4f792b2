"""Checks a command makes before it starts anything, each failing with one line: cause and fix.

``ringrift loop`` runs these first, so that a machine that cannot run the loop (a data dir it
cannot write, a database or broker that does not answer) is told so before any process starts,
instead of finding out from a worker's traceback in a log file.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ringrift.errors import StartupError

# Seconds to wait for a database or broker that does not answer before calling it unreachable.
CONNECT_TIMEOUT_S = 10


def _first_line(e: BaseException) -> str:
    cause = getattr(e, "orig", None) or e
    text = str(cause).strip().splitlines()
    return (text[0] if text else type(cause).__name__)[:300]


def writable_data_dir(path: Path) -> Path:
    """Create ``path`` if needed and prove a file can be written there."""
    path = Path(path).expanduser().absolute()
    probe = path / f".write-test-{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise StartupError(
            f"data dir {path} is not writable ({reason}): choose another with --data-dir or "
            "RINGRIFT_DATA_DIR"
        ) from None
    return path


def check_database(url: str) -> None:
    """Reach the ledger at ``url`` and bring it to the current schema."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from ringrift.store import migrate
    from ringrift.store.db import make_engine, normalize_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        shown = "(unparseable)"
    fix = "start it, or fix RINGRIFT_DATABASE_URL (unset: a SQLite file in the data dir)"
    try:
        u = normalize_url(url)
        sqlite = u.get_backend_name() == "sqlite"
        connect_args = {} if sqlite else {"connect_timeout": CONNECT_TIMEOUT_S}
        engine = make_engine(u, connect_args=connect_args)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except (SQLAlchemyError, ImportError, OSError) as e:
        raise StartupError(
            f"the ledger database {shown} is unreachable ({_first_line(e)}): {fix}"
        ) from None
    try:
        migrate(url)
    except (SQLAlchemyError, RuntimeError, OSError) as e:
        raise StartupError(
            f"the ledger database {shown} could not be brought to the current schema "
            f"({_first_line(e)}): restore it from a backup, or point RINGRIFT_DATABASE_URL at "
            "another database"
        ) from None


def check_broker(url: str) -> None:
    """Reach the broker at ``url`` (any transport Celery supports)."""
    from kombu import Connection
    from kombu.utils.url import maybe_sanitize_url

    try:
        with Connection(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=CONNECT_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001 - every transport raises its own kind
        raise StartupError(
            f"the broker at {maybe_sanitize_url(url)} does not answer ({_first_line(e)}): start "
            "it, or unset RINGRIFT_BROKER_URL to let ringrift loop start a private one"
        ) from None

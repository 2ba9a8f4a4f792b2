"""A fresh PostgreSQL database per fault run, on the server ``RINGRIFT_DATABASE_URL`` names,
reached through a ``CuttableProxy`` so that a run can play that server restarting."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from ringrift.chaos.cluster import Unavailable
from ringrift.chaos.proxy import CuttableProxy
from ringrift.store.db import normalize_url


def is_postgres(url: str | None) -> bool:
    return bool(url) and make_url(str(url)).get_backend_name() == "postgresql"


@contextmanager
def proxied_database(server_url: str) -> Iterator[tuple[str, CuttableProxy]]:
    """Create ``ringrift_faults_<hex>`` on ``server_url``'s server, yield its URL through a
    proxy and the proxy; drop it afterwards."""
    admin_url = normalize_url(server_url)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"ringrift_faults_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as e:
        admin.dispose()
        raise Unavailable(f"cannot create a database on {admin_url.host}: {e.orig}") from None
    proxy = CuttableProxy(admin_url.host or "127.0.0.1", admin_url.port or 5432)
    try:
        port = proxy.start()
        url = admin_url.set(database=name, host="127.0.0.1", port=port)
        yield url.render_as_string(hide_password=False), proxy
    finally:
        proxy.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

"""The compose file never starts an open service: Flower asks for a login, Redis for a password,
and compose itself refuses to start until both are set (``${VAR:?message}``)."""

from __future__ import annotations

import re

from tests.celery_harness import REPO

COMPOSE = (REPO / "docker-compose.yml").read_text()


def test_flower_requires_a_login_that_must_be_set() -> None:
    [command] = [line for line in COMPOSE.splitlines() if "celery -A ringrift flower" in line]
    assert "--basic-auth=${FLOWER_USER:?" in command and ":${FLOWER_PASSWORD:?" in command


def test_redis_requires_a_password_and_every_url_carries_it() -> None:
    assert '--requirepass "$$REDIS_PASSWORD"' in COMPOSE
    assert "REDIS_PASSWORD: ${REDIS_PASSWORD:?" in COMPOSE
    urls = re.findall(r"RINGRIFT_(?:BROKER_URL|RESULT_BACKEND): (\S+)", COMPOSE)
    assert len(urls) == 2
    assert all(u.startswith("redis://:${REDIS_PASSWORD:?") for u in urls), urls


def test_redis_keeps_an_append_only_file_on_a_volume() -> None:
    assert "--appendonly yes --appendfsync everysec" in COMPOSE
    assert "redisdata:/data" in COMPOSE

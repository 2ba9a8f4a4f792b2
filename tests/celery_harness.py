"""Real Celery workers for tests: a private Redis, worker subprocesses stopped by pid."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ringrift.celery import app
from ringrift.infra.processes import stop_process_group

REPO = Path(__file__).resolve().parent.parent


def celery_env(redis_url: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RINGRIFT_BROKER_URL=f"{redis_url}/0",
        RINGRIFT_RESULT_BACKEND=f"{redis_url}/1",
        RINGRIFT_DATA_DIR=str(data_dir),
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.pop("RINGRIFT_DATABASE_URL", None)
    return env


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``ringrift ARGS...`` as a user runs it, in its own process with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "ringrift.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def point_app_at(env: dict[str, str]) -> None:
    """Make this test process's Celery app talk to the same broker as the workers.

    The session has one private Redis, so this is set before the app's first connection and
    never changes afterwards.
    """
    app.conf.update(
        broker_url=env["RINGRIFT_BROKER_URL"], result_backend=env["RINGRIFT_RESULT_BACKEND"]
    )


@contextmanager
def worker(
    env: dict[str, str], queues: str, name: str, log_dir: Path, concurrency: int = 1
) -> Iterator[subprocess.Popen[bytes]]:
    """A `celery -A ringrift worker` process consuming ``queues``; killed by pid afterwards."""
    log = open(log_dir / f"worker-{name}.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ringrift",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        yield proc
    finally:
        stop_process_group(proc)


@contextmanager
def beat(env: dict[str, str], log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`celery -A ringrift beat` with its schedule file in ``log_dir``; killed by pid after."""
    log = open(log_dir / "beat.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ringrift",
            "beat",
            "-s",
            str(log_dir / "beat-schedule"),
            "--loglevel",
            "INFO",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        yield proc
    finally:
        stop_process_group(proc)


def wait_for_worker(queue: str, timeout: float = 60.0) -> dict[str, object]:
    """Block until a worker on ``queue`` answers a ping; returns its answer."""
    from ringrift.tasks.health import ping

    deadline = time.monotonic() + timeout
    result = ping.apply_async(queue=queue)
    while time.monotonic() < deadline:
        if result.ready():
            answer: dict[str, object] = result.get(timeout=1)
            return answer
        time.sleep(0.1)
    raise TimeoutError(f"no worker answered on queue {queue} within {timeout} s")

"""Real Celery workers for tests: a private Redis, worker subprocesses stopped by pid."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
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
def _celery(
    env: dict[str, str], args: list[str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A ringrift ARGS...`` in its own session, logging to ``log_path``; stopped by
    pid afterwards (a warm shutdown first)."""
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "ringrift", *args],
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


def worker(
    env: dict[str, str], queues: str, name: str, log_dir: Path, concurrency: int = 1
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """A `celery -A ringrift worker` process consuming ``queues``."""
    args = ["worker", "-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h"]
    args += ["--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    return _celery(env, args, log_dir / f"worker-{name}.log")


def beat(env: dict[str, str], log_dir: Path) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """`celery -A ringrift beat` with its schedule file in ``log_dir``."""
    args = ["beat", "-s", str(log_dir / "beat-schedule"), "--loglevel", "INFO"]
    return _celery(env, args, log_dir / "beat.log")


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


def waiting_collects(broker_url: str, queues: list[str]) -> set[str]:
    """The shards whose chained ``collect`` waits in ``queues`` (any priority): a selfplay task
    that finished while its worker shut down queues its collect for the next worker."""
    import base64
    import json

    import redis

    from ringrift.infra.queues import queue_keys

    r = redis.Redis.from_url(broker_url)
    shards = set()
    for queue in queues:
        for key in queue_keys(app, queue):
            for raw in r.lrange(key, 0, -1):
                message = json.loads(raw)
                if message["headers"].get("task") != "ringrift.sync.collect":
                    continue
                args = json.loads(base64.b64decode(message["body"]))[0]
                results = args[0] if isinstance(args[0], list) else [args[0]]
                shards |= {res["artifact_id"] for res in results if "artifact_id" in res}
    return shards

"""A whole training service on this machine, made to be hurt: its own Redis on a fixed port
(so it can be killed and started again, empty), a SQLite ledger and folder store in a work
folder (or ``RINGRIFT_DATABASE_URL``'s database), a ``gpu0`` and a ``cpu`` worker and beat, each
a process of its own that can be killed with SIGKILL and started again as a supervisor would
(compose's ``restart: unless-stopped``).

Time-outs are short so that a repair comes within seconds: a task silent for
``HEARTBEAT_SECONDS`` lost its worker, a training lease lapses in ``LEASE_SECONDS``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from ringrift.chaos.proxy import CuttableProxy
from ringrift.infra.localredis import LocalRedis, free_port
from ringrift.infra.processes import stop_process_group
from ringrift.infra.service import Service, open_service
from ringrift.infra.settings import Settings
from ringrift.store.db import database_url, migrate

HEARTBEAT_SECONDS = 4
LEASE_SECONDS = 8
TICK_SECONDS = 2
QUEUES = ("gpu0", "cpu")


class Unavailable(RuntimeError):
    """A fault this machine cannot play (no PostgreSQL to restart, no right to mount a disk)."""


_SERVICE_LOCK = threading.Lock()


@dataclass
class Cluster:
    """``with Cluster(folder) as c: ...`` runs the service for the block and stops every
    process it started, by process id."""

    workdir: Path
    database_url: str | None = None
    redis_port: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis: LocalRedis | None = None
    kills: int = 0
    proxy: CuttableProxy | None = None  # in front of the ledger's PostgreSQL, if it is one
    finished: threading.Event = field(default_factory=threading.Event)  # the loop is done
    _service: Service | None = None
    # a fault's thread may restart a process as the cluster stops: nothing starts once stopped
    _guard: threading.RLock = field(default_factory=threading.RLock)
    _stopped: bool = False

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def ledger_url(self) -> str:
        return self.database_url or database_url(self.data_dir)

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGRIFT_")}
        env.update(
            RINGRIFT_BROKER_URL=self.broker_url,
            RINGRIFT_RESULT_BACKEND=f"redis://127.0.0.1:{self.redis_port}/1",
            RINGRIFT_DATA_DIR=str(self.data_dir),
            RINGRIFT_TICK_SECONDS=str(TICK_SECONDS),
            RINGRIFT_TASK_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
            RINGRIFT_TRAIN_LEASE_SECONDS=str(LEASE_SECONDS),
        )
        if self.database_url:
            env["RINGRIFT_DATABASE_URL"] = self.database_url
        return env

    # ----- the broker -------------------------------------------------------------------------

    def start_redis(self) -> None:
        with self._guard:
            self._refuse_if_stopped("Redis")
            self.redis_port = self.redis_port or free_port()
            self.redis = LocalRedis(self.workdir / "redis", self.redis_port)
            self.redis.start()

    def kill_redis(self) -> None:
        """SIGKILL the broker: it keeps nothing on disk, so every queue, claim and heartbeat
        is gone."""
        assert self.redis is not None and self.redis.proc is not None
        self.redis.kill()
        self.redis.proc.wait()

    # ----- workers and beat -------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        with self._guard:
            self._refuse_if_stopped(name)
            self.logs.mkdir(parents=True, exist_ok=True)
            with open(self.logs / f"{name}.log", "ab") as out:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "ringrift", *args],
                    env=self.env(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def _refuse_if_stopped(self, what: str) -> None:
        if self._stopped:
            raise RuntimeError(f"not starting {what}: the cluster has stopped")

    def start_worker(self, queue: str) -> None:
        args = ["worker", "-Q", queue, "-c", "1", "-n", f"{queue}@%h", "--without-gossip"]
        self._spawn(f"worker-{queue}", [*args, "--without-mingle", "--loglevel", "INFO"])

    def start_beat(self) -> None:
        schedule = self.data_dir / "beat-schedule"
        self._spawn("beat", ["beat", "--loglevel", "INFO", "-s", str(schedule)])

    def kill(self, name: str) -> None:
        """SIGKILL a worker (``worker-<queue>``) or ``beat`` with its pool children, and start
        it again."""
        with self._guard:
            self._refuse_if_stopped(name)
            proc = self.procs[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self.kills += 1
            if name == "beat":
                self.start_beat()
            else:
                self.start_worker(name.removeprefix("worker-"))

    def service(self) -> Service:
        """The cluster's ledger and store, opened in this process as its workers see them."""
        with _SERVICE_LOCK:  # it swaps the environment: one thread at a time
            if self._service is None:
                self._service = self._open_service()
        return self._service

    def _open_service(self) -> Service:
        """Settings are read from the environment: swap in the cluster's for the moment."""
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(self.env())
            settings = Settings.from_env()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return open_service(settings)

    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ----- the service as a user drives it ----------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ringrift.cli", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def __enter__(self) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.start_redis()
            migrate(self.ledger_url)
            for queue in QUEUES:
                self.start_worker(queue)
            self.start_beat()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        with self._guard:  # a kill under way finishes its restart first; none starts after
            self._stopped = True
            procs, self.procs = list(self.procs.values()), {}
        for proc in procs:
            stop_process_group(proc, timeout=10)
        if self.redis is not None:
            self.redis.stop()
        if self._service is not None:
            self._service.engine.dispose()


def wait_until(predicate: Any, timeout: float, every: float = 0.2) -> bool:
    """Poll ``predicate`` until it holds; a ledger that does not answer (a fault may have cut
    it) is a "not yet"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OperationalError:
            pass
        time.sleep(every)
    return False

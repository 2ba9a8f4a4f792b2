"""Stopping the processes the service starts (workers, beat, torchrun ranks): each is started
in its own session, so its whole group can be stopped by process id, never by name."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def ask_to_stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process itself, not its group: a Celery worker then shuts down warm,
    letting its pool children finish the tasks they run (a SIGTERM to the whole group would kill
    those children mid-task)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a process started in its own session and everything in its group (a worker's pool
    children too): a warm shutdown for ``timeout`` seconds, then SIGKILL to the group."""
    if proc.poll() is None:
        ask_to_stop(proc)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # pool children may outlive the parent
        os.killpg(proc.pid, signal.SIGKILL)


def interrupt_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGINT to a process started in its own session and its group, as Ctrl-C in a terminal
    (``ringrift loop`` then stops its own workers, beat and broker); SIGKILL to the group if
    it has not ended ``timeout`` seconds later."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

"""Stopping the processes the service starts (workers, beat, torchrun ranks): each is started
in its own session, so its whole group can be stopped by process id, never by name."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a process started in its own session and everything in its group (a worker's pool
    children too): a warm shutdown first, then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # pool children may outlive the parent
        os.killpg(proc.pid, signal.SIGKILL)

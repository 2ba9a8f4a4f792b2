"""Errors of the service layer.

``ServiceError`` (a ``ValueError``) is bad input to a task: an unknown config, a missing model.
``StartupError`` is a command that cannot start on this machine as it is: its message is one
line that names the cause and the fix, and the ``ringrift`` command prints it without a traceback.
"""

from __future__ import annotations

from typing import Any

# A message quotes the bad value; a hostile one (a 10 MB id) is cut here, so that logs, task
# results and Flower stay readable and small.
MAX_MESSAGE = 1000


def bounded(message: Any) -> str:
    text = str(message)
    if len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE} more characters)"


class ServiceError(ValueError):
    """A task was asked to do something it cannot: unknown config, missing model, bad input."""

    def __init__(self, message: Any = "", *args: Any) -> None:
        super().__init__(bounded(message), *args)


class StartupError(RuntimeError):
    """A command could not start: no broker binary, a port in use, an unwritable data dir, an
    unreachable database or broker. Raised before anything is left running."""

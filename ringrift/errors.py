"""Errors of the service layer.

``ServiceError`` (a ``ValueError``) is bad input to a task: an unknown config, a missing model.
``StartupError`` is a command that cannot start on this machine as it is: its message is one
line that names the cause and the fix, and the ``ringrift`` command prints it without a traceback.
"""

from __future__ import annotations


class ServiceError(ValueError):
    """A task was asked to do something it cannot: unknown config, missing model, bad input."""


class StartupError(RuntimeError):
    """A command could not start: no broker binary, a port in use, an unwritable data dir, an
    unreachable database or broker. Raised before anything is left running."""

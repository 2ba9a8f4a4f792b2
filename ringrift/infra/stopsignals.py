"""Turn SIGINT, SIGTERM and SIGHUP into one orderly stop of a supervising command.

A supervisor (``timeout``, systemd, ``docker stop``) sends SIGTERM, a closed terminal SIGHUP and
Ctrl-C SIGINT; a command that starts child processes must stop them all for any of the three.
While ``StopSignals`` is active the first of them raises ``StopRequested`` in the main thread,
so the command's ``finally`` blocks run. Code that starts a process and records its id runs in
``held()``: a signal that arrives there waits until the id is recorded, so no child can be
started and then forgotten. Once the command is stopping (``stopping()``), a repeated signal
no longer raises: it calls the hurry callback (say, SIGKILL to every child) and the cleanup
goes on to its end.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(BaseException):
    """A stop signal arrived; a ``BaseException`` so that ``except Exception`` cannot eat it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """The shell's convention for a command ended by a signal: 128 + its number."""
        return 128 + self.signum


class _State:
    active = False
    depth = 0  # nesting of held() blocks
    pending: int | None = None  # a signal that arrived inside held()
    received: int | None = None  # the first signal of all
    stopping = False
    hurry: Callable[[], None] | None = None


_state = _State()


def _handle(signum: int, _frame: FrameType | None) -> None:
    if _state.received is None:
        _state.received = signum
    if _state.stopping:
        if _state.hurry is not None:
            _state.hurry()
        return
    if _state.depth > 0:
        _state.pending = _state.pending or signum
        return
    raise StopRequested(signum)


@contextmanager
def held() -> Iterator[None]:
    """Hold stop signals for the block (start a process and record it here); a signal that
    came meanwhile is raised when the block ends. A no-op while no ``StopSignals`` is active."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0 and _state.pending is not None and not _state.stopping:
            signum, _state.pending = _state.pending, None
            if _state.active:
                raise StopRequested(signum)


class StopSignals:
    """``with StopSignals() as signals:`` installs the handlers (main thread only) and puts the
    previous ones back at the end."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        _state.active, _state.depth, _state.pending = True, 0, None
        _state.received, _state.stopping, _state.hurry = None, False, None
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, _handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        _state.active = False

    def stopping(self, hurry: Callable[[], None] | None = None) -> None:
        """From now on a signal does not raise; it calls ``hurry`` (if given) instead."""
        _state.stopping = True
        _state.hurry = hurry

    @property
    def received(self) -> int | None:
        """The first stop signal that arrived, if any."""
        return _state.received

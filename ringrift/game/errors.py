"""Errors raised by the rules engine; all are ``ValueError`` so callers can catch broadly."""

from __future__ import annotations

from typing import Any

from ringrift.errors import bounded


class RingRiftError(ValueError):
    """Bad input to the engine: an unknown configuration, a malformed state or move."""

    def __init__(self, message: Any = "", *args: Any) -> None:
        super().__init__(bounded(message), *args)


class IllegalMoveError(RingRiftError):
    """A move that is not legal in the position it was applied to."""


class AmbiguousMoveError(RingRiftError):
    """A move description that matches more than one legal move; ``candidates`` holds them."""

    def __init__(self, message: str, candidates: list[Any]) -> None:
        super().__init__(message)
        self.candidates = candidates

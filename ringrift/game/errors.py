"""Errors raised by the rules engine; all are ``ValueError`` so callers can catch broadly."""

from __future__ import annotations


class RingRiftError(ValueError):
    """Bad input to the engine: an unknown configuration, a malformed state or move."""


class IllegalMoveError(RingRiftError):
    """A move that is not legal in the position it was applied to."""

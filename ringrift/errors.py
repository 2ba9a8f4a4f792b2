"""Errors of the service layer (bad task arguments, missing models); all are ``ValueError``."""

from __future__ import annotations


class ServiceError(ValueError):
    """A task was asked to do something it cannot: unknown config, missing model, bad input."""

"""Leases with fencing tokens: who may write a long-running job's results.

``acquire`` takes a Redis key with a time-out and a token from a counter that only grows; the
holder renews it while it works. A holder that stalls past the time-out loses the key, and the
next holder's token is larger, so the ledger can refuse the stale holder's writes by comparing
tokens (``UPDATE ... WHERE lease_token = :mine``), whatever the stale holder believes.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end"
)


class LeaseLost(RuntimeError):
    """The lease ran out or was taken over: the holder must stop writing."""


@dataclass
class Lease:
    client: redis.Redis
    name: str
    seconds: int
    token: int = 0

    @property
    def key(self) -> str:
        return f"ringrift:lease:{self.name}"

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; on success ``token`` is larger than any before."""
        token = int(self.client.incr(f"ringrift:fence:{self.name}"))
        if self.client.set(self.key, token, nx=True, ex=self.seconds):
            self.token = token
            return True
        return False

    def renew(self) -> None:
        """Extend the lease; raises ``LeaseLost`` if this holder no longer has it."""
        if not self.token or not self.client.eval(_RENEW, 1, self.key, self.token, self.seconds):
            raise LeaseLost(f"lease {self.name} (token {self.token}) is no longer held")

    def release(self) -> None:
        if self.token:
            self.client.eval(_RELEASE, 1, self.key, self.token)

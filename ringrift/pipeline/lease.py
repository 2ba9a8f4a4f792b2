"""Leases with fencing tokens: who may write a long-running job's results.

``acquire`` takes a Redis key with a time-out and a token from a counter that only grows; the
holder renews it while it works. A holder that stalls past the time-out loses the key, and the
next holder's token is larger, so the ledger can refuse the stale holder's writes by comparing
tokens (``UPDATE ... WHERE lease_token = :mine``), whatever the stale holder believes.

Redis may lose its data (a restart without persistence). The counter then starts again, so the
caller passes the ledger's newest token as a floor and the next token is above it; and a holder
whose key vanished takes it back on its next renewal, unless a newer token was handed out since.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

# KEYS: the lease, the fence counter. ARGV: the floor (acquire) or the holder's token (renew),
# then the time-out.
_NEXT_TOKEN = """
local token = redis.call('incr', KEYS[2])
local floor = tonumber(ARGV[1])
if token <= floor then
  token = floor + 1
  redis.call('set', KEYS[2], token)
end
if redis.call('set', KEYS[1], token, 'NX', 'EX', ARGV[2]) then return token end
return 0
"""
_RENEW = """
local held = redis.call('get', KEYS[1])
if held == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end
if held then return 0 end
local fence = tonumber(redis.call('get', KEYS[2]) or '0')
if fence > tonumber(ARGV[1]) then return 0 end
redis.call('set', KEYS[2], ARGV[1])
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
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

    @property
    def fence(self) -> str:
        return f"ringrift:fence:{self.name}"

    def acquire(self, floor: int = 0) -> bool:
        """Take the lease if nobody holds it; on success ``token`` is larger than any before and
        than ``floor`` (the newest token the ledger recorded)."""
        token = int(self.client.eval(_NEXT_TOKEN, 2, self.key, self.fence, floor, self.seconds))
        if token:
            self.token = token
            return True
        return False

    def renew(self) -> None:
        """Extend the lease, or take it back if its key is gone and no newer token was handed
        out; raises ``LeaseLost`` if this holder no longer has it."""
        if not self.token or not self.client.eval(
            _RENEW, 2, self.key, self.fence, self.token, self.seconds
        ):
            raise LeaseLost(f"lease {self.name} (token {self.token}) is no longer held")

    def release(self) -> None:
        if self.token:
            self.client.eval(_RELEASE, 1, self.key, self.token)

"""How much selfplay each configuration deserves: pure functions of numbers read from the ledger,
so every decision can be recomputed, explained and tested.

A configuration's priority is ``weight * (2 + 4*deficit + 2*staleness + 2*velocity)``, between 2
and 10 times its curriculum weight:

- **deficit** (0..1): how far its new games fall short of the next export;
- **staleness** (0..1): time since its last promotion, over the preset's horizon;
- **velocity** (0..1): rating gained per promotion over the last few, per 100 Elo.

Shares are priorities over their sum; a configuration's target is its share of the selfplay
slots. Targets move only past a threshold (``change_reason``), so the scheduler does not chase
noise, and every move is written down with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PRIORITY_STEP = 2.0  # a priority change this large is always recorded
TARGET_STEP = 3  # ... or a target change of this many slots
TARGET_RATIO = 0.5  # ... or of this share of the current target
VELOCITY_WINDOW = 3  # promotions the velocity is measured over
VELOCITY_SCALE = 100.0  # Elo per promotion that counts as full speed


@dataclass(frozen=True)
class Signals:
    """What the ledger says about one configuration, as the priority needs it."""

    config: str
    weight: float  # curriculum weight, 1 by default
    new_games: int  # games since the last export
    games_per_generation: int
    hours_since_promotion: float
    stale_hours: float  # the preset's staleness horizon
    ratings: Sequence[float]  # the promoted models' ratings, oldest first


@dataclass(frozen=True)
class Priority:
    config: str
    value: float
    deficit: float
    staleness: float
    velocity: float
    weight: float

    def explain(self) -> str:
        return (
            f"weight {self.weight:g} x (2 + 4 x deficit {self.deficit:.2f}"
            f" + 2 x staleness {self.staleness:.2f} + 2 x velocity {self.velocity:.2f})"
            f" = {self.value:.2f}"
        )


def velocity(ratings: Sequence[float]) -> float:
    """Rating gained per promotion over the last ``VELOCITY_WINDOW``, scaled to 0..1."""
    if len(ratings) < 2:
        return 0.0
    window = list(ratings)[-(VELOCITY_WINDOW + 1) :]
    gain = (window[-1] - window[0]) / (len(window) - 1)
    return min(1.0, max(0.0, gain / VELOCITY_SCALE))


def priority(sig: Signals) -> Priority:
    if sig.weight < 0 or sig.games_per_generation < 1 or sig.stale_hours <= 0:
        raise ValueError(f"{sig.config}: weight, games per generation and horizon must be > 0")
    deficit = min(1.0, max(0.0, 1.0 - sig.new_games / sig.games_per_generation))
    staleness = min(1.0, max(0.0, sig.hours_since_promotion / sig.stale_hours))
    vel = velocity(sig.ratings)
    value = sig.weight * (2.0 + 4.0 * deficit + 2.0 * staleness + 2.0 * vel)
    return Priority(sig.config, value, deficit, staleness, vel, sig.weight)


def shares(priorities: Sequence[Priority]) -> dict[str, float]:
    total = sum(p.value for p in priorities)
    if total <= 0:
        return {p.config: 0.0 for p in priorities}
    return {p.config: p.value / total for p in priorities}


def targets(share: dict[str, float], slots: int) -> dict[str, int]:
    """Whole slots in proportion to ``share`` (largest remainders), summing to ``slots``; a
    configuration with any share gets at least one slot while slots last."""
    if slots <= 0 or not share:
        return {c: 0 for c in share}
    exact = {c: s * slots for c, s in share.items()}
    out = {c: math.floor(v) for c, v in exact.items()}
    rest = slots - sum(out.values())
    for c in sorted(exact, key=lambda c: (-(exact[c] - out[c]), c))[:rest]:
        out[c] += 1
    for c in sorted(share, key=lambda c: -share[c]):
        if share[c] > 0 and out[c] == 0:
            donor = max(out, key=lambda d: out[d])
            if out[donor] > 1:
                out[donor] -= 1
                out[c] = 1
    return out


def change_reason(
    old_priority: float | None, old_target: int | None, new_priority: float, new_target: int
) -> str | None:
    """Why the recorded target should move, or None when the move is within the thresholds."""
    if old_priority is None or old_target is None:
        return "first schedule"
    dp = new_priority - old_priority
    if abs(dp) >= PRIORITY_STEP:
        return f"priority {old_priority:.2f} -> {new_priority:.2f} ({dp:+.2f})"
    dt = new_target - old_target
    if abs(dt) >= TARGET_STEP:
        return f"target {old_target} -> {new_target} ({dt:+d} slots)"
    if dt and abs(dt) >= TARGET_RATIO * max(old_target, 1):
        return f"target {old_target} -> {new_target} ({dt / max(old_target, 1):+.0%})"
    return None


def allocate(
    free: int,
    target: dict[str, int],
    inflight: dict[str, int],
    prio: dict[str, float],
    room: dict[str, int],
    waited: dict[str, float] | None = None,
) -> list[str]:
    """The configuration for each of ``free`` new selfplay tasks: those below their target
    first, each filled in proportion to its target; once every one is at its target, the
    highest priority per task in flight, so no free queue is left idle while some configuration
    may still play. ``room`` caps the new tasks of each configuration (its backpressure bound).

    Among configurations equally far below their targets, the one with the largest priority
    times ``waited`` (seconds since its last selfplay task was sent) goes first: when the
    targets add up to more places than free up, a lower priority waits longer but is never
    passed over for good."""
    waited = waited or {}
    load = dict(inflight)
    given = {c: 0 for c in target}
    picks: list[str] = []
    for _ in range(free):
        open_ = [c for c in target if given[c] < room.get(c, 0)]
        if not open_:
            break
        below = [c for c in open_ if load.get(c, 0) < target[c]]
        if below:  # the least filled in proportion to its target, the higher priority on a tie
            c = min(
                below,
                key=lambda c: (
                    load.get(c, 0) / target[c],
                    -prio.get(c, 0.0) * waited.get(c, 1.0),
                    -prio.get(c, 0.0),
                    c,
                ),
            )
        else:
            c = max(open_, key=lambda c: (prio.get(c, 0.0) / (1 + load.get(c, 0)), c))
        picks.append(c)
        waited[c] = 0.0
        load[c] = load.get(c, 0) + 1
        given[c] += 1
    return picks

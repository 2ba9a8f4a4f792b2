"""The promotion gate: the one place that decides whether a candidate replaces the best model.

A candidate plays matches against fixed opponents (random, heuristic) and against the current
best. Each match gives a score (wins + half the draws, over games) and its 95% Wilson interval;
the gate passes only when, for every gating opponent, both the score and the interval's lower
bound reach that opponent's thresholds. ``GateConfig`` holds every threshold; nothing else
promotes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Z95 = 1.959963984540054


@dataclass(frozen=True)
class MatchScore:
    opponent: str
    games: int
    wins: int
    losses: int
    draws: int

    @property
    def score(self) -> float:
        return (self.wins + 0.5 * self.draws) / self.games if self.games else 0.0

    def interval(self, z: float = Z95) -> tuple[float, float]:
        """Wilson score interval of ``score`` (draws count half)."""
        n = self.games
        if n == 0:
            return (0.0, 1.0)
        p = self.score
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Threshold:
    min_score: float
    min_lower_bound: float


@dataclass(frozen=True)
class GateConfig:
    """Thresholds per opponent kind; an opponent kind missing here is reported, not gating."""

    thresholds: dict[str, Threshold] = field(
        default_factory=lambda: {
            "random": Threshold(min_score=0.8, min_lower_bound=0.7),
            "best": Threshold(min_score=0.55, min_lower_bound=0.5),
        }
    )


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str]


def opponent_kind(opponent: str) -> str:
    """``random`` and ``heuristic`` are themselves; any model id counts as ``best``."""
    return opponent if opponent in ("random", "heuristic") else "best"


def decide(scores: list[MatchScore], gate: GateConfig, *, has_best: bool) -> GateDecision:
    """Promote when every gating opponent is beaten by the required margins.

    Without a current best (the first generation) the ``best`` threshold does not apply. A
    gating opponent with no match at all fails the gate: missing evidence never promotes.
    """
    reasons: list[str] = []
    ok = True
    by_kind = {opponent_kind(s.opponent): s for s in scores}
    for kind, th in gate.thresholds.items():
        if kind == "best" and not has_best:
            continue
        s = by_kind.get(kind)
        if s is None or s.games == 0:
            ok = False
            reasons.append(f"no games against {kind}")
            continue
        low, high = s.interval()
        passed = s.score >= th.min_score and low >= th.min_lower_bound
        ok = ok and passed
        reasons.append(
            f"{kind}: score {s.score:.3f} over {s.games} games, 95% interval "
            f"[{low:.3f}, {high:.3f}]; needs score >= {th.min_score} and lower bound >= "
            f"{th.min_lower_bound}: {'pass' if passed else 'fail'}"
        )
    return GateDecision(ok, reasons)

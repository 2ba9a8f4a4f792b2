"""The promotion gate: the one place that decides whether a candidate replaces the best model.

A candidate plays matches against fixed opponents (random, heuristic) and against the current
best. Each match gives a score (the candidate's mean rank score: a win 1, a draw 0.5, a loss 0,
and with three or four players first 1, last 0, ties shared) and its 95% Wilson interval.
Against a fixed opponent the gate needs both the score and the interval's lower bound to reach
that opponent's thresholds (floors). Against the best, the sequential test (``sprt``) decides:
it passes or fails the candidate, and where it reached its game cap undecided, the "best"
threshold decides if the gate has one and the candidate is rejected if not. ``GateConfig``
holds every threshold; nothing else promotes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ringrift.pipeline.sprt import SprtConfig, SprtResult, sprt

Z95 = 1.959963984540054


@dataclass(frozen=True)
class MatchScore:
    opponent: str
    games: int
    wins: int
    losses: int
    draws: int
    score_sum: float | None = None  # summed rank scores; None: wins + half the draws
    histogram: Mapping[float, int] | None = None  # games per score value; None: from W/D/L

    @property
    def score(self) -> float:
        if not self.games:
            return 0.0
        total = self.wins + 0.5 * self.draws if self.score_sum is None else self.score_sum
        return total / self.games

    def counts(self) -> Mapping[float, int]:
        """Games per score value, as the sequential test reads them."""
        if self.histogram is not None:
            return self.histogram
        return {1.0: self.wins, 0.5: self.draws, 0.0: self.losses}

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
    sprt: SprtResult | None = None  # the test against the best, where there was one


def opponent_kind(opponent: str) -> str:
    """``random`` and ``heuristic`` are themselves; any model id counts as ``best``."""
    return opponent if opponent in ("random", "heuristic") else "best"


def decide(
    scores: list[MatchScore],
    gate: GateConfig,
    *,
    has_best: bool,
    test: SprtConfig | None = None,
) -> GateDecision:
    """Promote when every floor holds and the candidate beat the best.

    Without a current best (the first generation) nothing is asked against the best. With
    ``test``, the sequential test over the games against the best decides (its cap falls back
    to the "best" threshold, or rejects without one); without it, the "best" threshold. A
    gating opponent with no match at all fails the gate: missing evidence never promotes.
    """
    reasons: list[str] = []
    ok = True
    by_kind = {opponent_kind(s.opponent): s for s in scores}
    result: SprtResult | None = None
    if has_best and test is not None:
        s = by_kind.get("best")
        result = sprt(s.counts() if s is not None else {}, test)
        passed = result.passed
        if result.verdict == "capped" and "best" in gate.thresholds:
            assert s is not None  # a cap is only reached with games
            passed = _floor(s, gate.thresholds["best"], "best", reasons)
            reasons[-1] = f"{result.describe()}; at the cap, {reasons[-1]}"
        else:
            undecided = "; undecided, so no promotion" if result.verdict == "continue" else ""
            reasons.append(f"best: {result.describe()}{undecided}")
        ok = passed
    for kind, th in gate.thresholds.items():
        if kind == "best" and (not has_best or test is not None):
            continue
        s = by_kind.get(kind)
        if s is None or s.games == 0:
            ok = False
            reasons.append(f"no games against {kind}")
            continue
        ok = _floor(s, th, kind, reasons) and ok
    return GateDecision(ok, reasons, result)


def _floor(s: MatchScore, th: Threshold, kind: str, reasons: list[str]) -> bool:
    """Does ``s`` reach ``th``? Adds the reason either way."""
    low, high = s.interval()
    passed = s.score >= th.min_score and low >= th.min_lower_bound
    reasons.append(
        f"{kind}: score {s.score:.3f} over {s.games} games, 95% interval "
        f"[{low:.3f}, {high:.3f}]; needs score >= {th.min_score} and lower bound >= "
        f"{th.min_lower_bound}: {'pass' if passed else 'fail'}"
    )
    return passed

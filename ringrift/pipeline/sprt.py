"""A sequential probability ratio test on game scores: is the candidate at least ``elo1``
stronger than its opponent, or no stronger than ``elo0``?

Each game gives the candidate a score in [0, 1]: 1, 0.5, 0 for a win, draw and loss in two-player
games, and the rank score (first 1, last 0, ties shared) with three or four players. An Elo
difference ``e`` means an expected score ``1 / (1 + 10 ** (-e / 400))``.

The test is the generalized SPRT (M. Van den Bergh, "A practical introduction to the
generalized sequential probability ratio test"): the games' scores form a multinomial over the
score values seen; under each hypothesis the distribution is the most likely one whose mean is
that hypothesis's expected score, and the log-likelihood ratio (LLR) of the two decides. Draws
and shared places need no model of their own, and an unbroken run of wins counts only as much
evidence as it is (ten wins between ``elo0 = 0`` and ``elo1 = 20`` is an LLR of about 0.56, not
a certainty). A pseudo-count of ``PRIOR`` games at each of the scores 0 and 1 keeps both
hypotheses possible from the first game.

The test accepts ``elo1`` once the LLR reaches ``log((1 - beta) / alpha)``, accepts ``elo0`` once
it falls to ``log(beta / (1 - alpha))``, and stops at ``max_games`` without a decision
("capped"; the gate says what follows, and never promotes on a cap alone).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PRIOR = 1e-3  # pseudo-games at score 0 and at score 1
SCORE_DIGITS = 6  # scores are rounded to this many digits before they are counted


@dataclass(frozen=True)
class SprtConfig:
    elo0: float = 0.0
    elo1: float = 20.0
    alpha: float = 0.05  # chance of passing a candidate whose strength is elo0
    beta: float = 0.05  # chance of failing a candidate whose strength is elo1
    max_games: int = 400  # no decision by then: capped

    def __post_init__(self) -> None:
        if not self.elo0 < self.elo1:
            raise ValueError(f"SPRT needs elo0 < elo1, got {self.elo0} and {self.elo1}")
        if not (0 < self.alpha < 0.5 and 0 < self.beta < 0.5):
            raise ValueError(f"SPRT needs 0 < alpha, beta < 0.5, got {self.alpha}, {self.beta}")
        if self.max_games < 1:
            raise ValueError(f"SPRT needs max_games >= 1, got {self.max_games}")

    @property
    def bounds(self) -> tuple[float, float]:
        """(lower, upper): at or below the lower bound elo0 is accepted, at or above the upper
        one elo1."""
        return (
            math.log(self.beta / (1 - self.alpha)),
            math.log((1 - self.beta) / self.alpha),
        )


@dataclass(frozen=True)
class SprtResult:
    verdict: str  # "pass" (elo1 accepted), "fail" (elo0 accepted), "capped", "continue"
    llr: float
    lower: float
    upper: float
    games: int
    mean_score: float
    config: SprtConfig

    @property
    def decided(self) -> bool:
        return self.verdict != "continue"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def describe(self) -> str:
        c = self.config
        return (
            f"SPRT elo0 {c.elo0:g} / elo1 {c.elo1:g}, alpha {c.alpha:g}, beta {c.beta:g}: "
            f"LLR {self.llr:.3f} in [{self.lower:.3f}, {self.upper:.3f}] after {self.games} "
            f"games (mean score {self.mean_score:.3f}, cap {c.max_games}): {self.verdict}"
        )

    def to_dict(self) -> dict[str, object]:
        c = self.config
        return {
            "verdict": self.verdict,
            "llr": round(self.llr, 6),
            "lower": round(self.lower, 6),
            "upper": round(self.upper, 6),
            "games": self.games,
            "mean_score": round(self.mean_score, 6),
            "elo0": c.elo0,
            "elo1": c.elo1,
            "alpha": c.alpha,
            "beta": c.beta,
            "max_games": c.max_games,
        }


def expected_score(elo: float) -> float:
    return 1.0 / (1.0 + 10.0 ** (-elo / 400.0))


def histogram(scores: Iterable[float]) -> dict[float, int]:
    """Scores counted by value (rounded to ``SCORE_DIGITS``), as ``sprt`` takes them."""
    counts: dict[float, int] = {}
    for x in scores:
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"a game score must lie in [0, 1], got {x!r}")
        key = round(float(x), SCORE_DIGITS)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _constrained_logs(values: list[float], freqs: list[float], mean: float) -> list[float]:
    """Log-probabilities of the most likely distribution on ``values`` with this ``mean``,
    given the observed ``freqs`` (which sum to one): ``p_j = f_j / (1 + lam * (x_j - mean))``
    with ``lam`` solving ``sum f_j (x_j - mean) / (1 + lam (x_j - mean)) = 0``."""
    d = [x - mean for x in values]
    hi_d, lo_d = max(d), min(d)  # hi_d > 0 > lo_d: the prior puts mass on 0 and 1
    lo_lam, hi_lam = -1.0 / hi_d, -1.0 / lo_d  # where every 1 + lam * d_j stays positive

    def slope(lam: float) -> float:
        return sum(f * dj / (1.0 + lam * dj) for f, dj in zip(freqs, d, strict=True))

    a, b = lo_lam, hi_lam
    for _ in range(100):  # slope decreases in lam: bisect
        mid = 0.5 * (a + b)
        if mid in (a, b):
            break
        if slope(mid) > 0:
            a = mid
        else:
            b = mid
    lam = 0.5 * (a + b)
    return [math.log(f) - math.log1p(lam * dj) for f, dj in zip(freqs, d, strict=True)]


def llr(counts: Mapping[float, int], config: SprtConfig) -> float:
    """The log-likelihood ratio of elo1 against elo0 for these score counts."""
    merged: dict[float, float] = {x: float(n) for x, n in counts.items() if n}  # seen values
    for edge in (0.0, 1.0):
        merged[edge] = merged.get(edge, 0) + PRIOR
    values = sorted(merged)
    weights = [float(merged[v]) for v in values]
    total = sum(weights)
    freqs = [w / total for w in weights]
    log0 = _constrained_logs(values, freqs, expected_score(config.elo0))
    log1 = _constrained_logs(values, freqs, expected_score(config.elo1))
    games = sum(counts.values())
    return games * sum(f * (b - a) for f, a, b in zip(freqs, log0, log1, strict=True))


def sprt(counts: Mapping[float, int], config: SprtConfig) -> SprtResult:
    """The test's state after the games counted in ``counts`` (score value -> games)."""
    games = sum(counts.values())
    if any(n < 0 for n in counts.values()) or any(not 0 <= x <= 1 for x in counts):
        raise ValueError(f"score counts must be non-negative counts of scores in [0, 1]: {counts}")
    lower, upper = config.bounds
    value = llr(counts, config) if games else 0.0
    mean = sum(x * n for x, n in counts.items()) / games if games else 0.0
    if value >= upper:
        verdict = "pass"
    elif value <= lower:
        verdict = "fail"
    elif games >= config.max_games:
        verdict = "capped"
    else:
        verdict = "continue"
    return SprtResult(verdict, value, lower, upper, games, mean, config)


__all__ = ["SprtConfig", "SprtResult", "expected_score", "histogram", "llr", "sprt"]

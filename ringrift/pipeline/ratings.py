"""Ratings: a maximum-likelihood Bradley-Terry fit, on the Elo scale, over every recorded match.

Each match between ``a`` and ``b`` contributes ``a``'s total score (wins, half the draws; rank
scores with three or four players) over its games. With ``p = 1 / (1 + 10 ** ((r_b - r_a) / 400))``
the log-likelihood is ``sum score * log p + (games - score) * log(1 - p)``: a draw counts as half
a win for each side, as Ordo and BayesElo's default treat it. The fit is recomputed from all
matches each time (never incremented), so results recorded in any order or twice over give the
same table.

The anchor (``random``) is pinned at 0. So that a perfect score gives a finite rating, every pair
that played gets ``prior_draws`` virtual draws (BayesElo's prior), and every rating a weak normal
prior around 0 (``ridge_elo``) keeps a player no match connects to the anchor at 0 rather than
undefined. Intervals come from the curvature of the log-likelihood at its maximum (the inverse
of the observed information), relative to the anchor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

ELO = 400.0 / math.log(10.0)  # Elo points per unit of the logistic scale
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Pairing:
    """``games`` games between ``a`` and ``b`` in which ``a`` scored ``score``."""

    a: str
    b: str
    games: float
    score: float

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise ValueError(f"a player cannot be paired with itself: {self.a!r}")
        if self.games < 0 or not 0 <= self.score <= self.games:
            raise ValueError(f"{self.a} vs {self.b}: score {self.score} of {self.games} games")


@dataclass(frozen=True)
class Rated:
    player: str
    rating: float  # Elo, the anchor at 0
    low: float  # 95% interval
    high: float
    games: float  # real games played (virtual draws not counted)


def fit(
    pairings: Iterable[Pairing],
    anchor: str = "random",
    *,
    prior_draws: float = 1.0,
    ridge_elo: float = 2000.0,
) -> list[Rated]:
    """Ratings of every player in ``pairings``, the anchor first, then by rating."""
    pairs = [p for p in pairings if p.games > 0]
    players = sorted({p.a for p in pairs} | {p.b for p in pairs} | {anchor})
    free = [q for q in players if q != anchor]
    index = {q: i for i, q in enumerate(free)}
    games: dict[str, float] = dict.fromkeys(players, 0.0)
    a_idx, b_idx, n, s = [], [], [], []
    seen: set[tuple[str, str]] = set()
    for p in pairs:
        games[p.a] += p.games
        games[p.b] += p.games
        a_idx.append(index.get(p.a, -1))
        b_idx.append(index.get(p.b, -1))
        n.append(p.games)
        s.append(p.score)
        seen.add((min(p.a, p.b), max(p.a, p.b)))
    for a, b in sorted(seen):  # the prior's virtual draws, once per pair
        a_idx.append(index.get(a, -1))
        b_idx.append(index.get(b, -1))
        n.append(prior_draws)
        s.append(prior_draws / 2)
    x, cov = _newton(
        len(free), np.array(a_idx), np.array(b_idx), np.array(n), np.array(s), ridge_elo / ELO
    )
    out = [Rated(anchor, 0.0, 0.0, 0.0, games[anchor])]
    for q in free:
        i = index[q]
        r, half = x[i] * ELO, Z95 * math.sqrt(max(cov[i, i], 0.0)) * ELO
        out.append(Rated(q, r, r - half, r + half, games[q]))
    out[1:] = sorted(out[1:], key=lambda rt: -rt.rating)
    return out


def _newton(
    k: int,
    a: np.ndarray,
    b: np.ndarray,
    n: np.ndarray,
    s: np.ndarray,
    ridge: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximise the penalised log-likelihood over the ``k`` free ratings (logistic scale; index
    -1 is the anchor at 0); the maximum and the inverse of the information there."""
    x = np.zeros(k)
    prec = 1.0 / (ridge * ridge)
    info = np.eye(k) * prec
    for _ in range(100):
        full = np.append(x, 0.0)  # index -1 reads the anchor
        p = 1.0 / (1.0 + np.exp(full[b] - full[a]))
        resid = s - n * p  # d loglik / d x_a for each row; minus that for x_b
        w = n * p * (1 - p)
        grad = -prec * x
        info = np.eye(k) * prec
        for i, j, r, ww in zip(a, b, resid, w, strict=True):
            if i >= 0:
                grad[i] += r
                info[i, i] += ww
            if j >= 0:
                grad[j] -= r
                info[j, j] += ww
            if i >= 0 and j >= 0:
                info[i, j] -= ww
                info[j, i] -= ww
        step = np.linalg.solve(info, grad)
        x = x + np.clip(step, -2.0, 2.0)  # at most ~350 Elo a step keeps it stable
        if np.max(np.abs(step), initial=0.0) < 1e-10:
            break
    return x, np.linalg.inv(info) if k else np.zeros((0, 0))


def pairings_from_results(rows: Sequence[tuple[str, str, int, int, int]]) -> list[Pairing]:
    """(a, b, wins, losses, draws) rows from ``a``'s side as pairings."""
    return [Pairing(a, b, w + lo + d, w + 0.5 * d) for a, b, w, lo, d in rows]


__all__ = ["ELO", "Pairing", "Rated", "fit", "pairings_from_results"]

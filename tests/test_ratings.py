"""The rating fit: known score rates give their Elo differences, ratings chain through common
opponents, a perfect score stays finite, intervals narrow with games and cover the truth, and
the order or splitting of results changes nothing."""

from __future__ import annotations

import math
import random

import pytest

from ringrift.pipeline.ratings import Pairing, fit, pairings_from_results


def _elo(score: float) -> float:
    return 400 * math.log10(score / (1 - score))


def _table(pairings: list[Pairing], **kw: float) -> dict[str, tuple[float, float, float]]:
    return {r.player: (r.rating, r.low, r.high) for r in fit(pairings, **kw)}


def test_a_score_rate_gives_its_elo_difference_and_the_anchor_stays_at_zero() -> None:
    t = _table([Pairing("m1", "random", 4000, 3000)])
    assert t["random"] == (0.0, 0.0, 0.0)
    assert t["m1"][0] == pytest.approx(_elo(0.75), abs=1.0)
    low, high = t["m1"][1:]
    assert low < t["m1"][0] < high and high - low < 30


def test_ratings_chain_through_common_opponents() -> None:
    rows = [("m1", "random", 750, 250, 0), ("m2", "m1", 600, 200, 200)]
    t = _table(pairings_from_results(rows))
    assert t["m1"][0] == pytest.approx(_elo(0.75), abs=3)
    assert t["m2"][0] - t["m1"][0] == pytest.approx(_elo(0.7), abs=3)
    order = [r.player for r in fit(pairings_from_results(rows))]
    assert order == ["random", "m2", "m1"]


def test_a_perfect_score_is_finite_and_more_games_say_more() -> None:
    few = _table([Pairing("m1", "random", 8, 8)])["m1"]
    many = _table([Pairing("m1", "random", 200, 200)])["m1"]
    assert 0 < few[0] < many[0] < 2000
    assert many[2] - many[1] < few[2] - few[1]


def test_order_and_splitting_of_results_change_nothing() -> None:
    whole = [Pairing("m1", "random", 10, 7), Pairing("m2", "m1", 10, 6), Pairing("m2", "h", 4, 1)]
    split = [
        Pairing("m2", "h", 4, 1),
        Pairing("random", "m1", 6, 2),  # the same games seen from the other side
        Pairing("m2", "m1", 5, 3),
        Pairing("m1", "random", 4, 3),
        Pairing("m2", "m1", 5, 3),
    ]
    a, b = _table(whole), _table(split)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-6)


def test_intervals_cover_the_true_ratings_in_simulation() -> None:
    truth = {"m1": 100.0, "m2": 250.0, "h": 50.0}
    pairs = (("m1", "random"), ("m2", "m1"), ("m2", "random"), ("h", "random"), ("m2", "h"))
    rng = random.Random(7)
    covered = runs = 0
    for _ in range(40):
        pairings = []
        for a, b in pairs:
            diff = truth[a] - truth.get(b, 0.0)
            p = 1 / (1 + 10 ** (-diff / 400))
            score = sum(rng.random() < p for _ in range(100))
            pairings.append(Pairing(a, b, 100, score))
        for r in fit(pairings)[1:]:
            runs += 1
            covered += r.low <= truth[r.player] <= r.high
    assert covered / runs >= 0.88  # 95% intervals, with room for chance


def test_bad_pairings_are_refused() -> None:
    with pytest.raises(ValueError, match="itself"):
        Pairing("m1", "m1", 2, 1)
    with pytest.raises(ValueError, match="score"):
        Pairing("m1", "random", 2, 3)

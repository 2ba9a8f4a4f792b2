"""The SPRT on synthetic result streams with known answers: the LLR matches the binomial one
where there are no draws, a clearly stronger candidate passes early, an equal one does not pass,
alpha and beta hold over many simulated runs, and bad input is refused."""

from __future__ import annotations

import math
import random

import pytest

from ringrift.pipeline.sprt import SprtConfig, expected_score, histogram, llr, sprt

CONFIG = SprtConfig(elo0=0, elo1=20, alpha=0.05, beta=0.05, max_games=400)
WIDE = SprtConfig(elo0=0, elo1=100, alpha=0.05, beta=0.05, max_games=100_000)


def _game(rng: random.Random, elo: float, draw_rate: float) -> float:
    """One two-player game's score for a candidate ``elo`` stronger, ``draw_rate`` of games
    drawn."""
    win = expected_score(elo) - draw_rate / 2
    u = rng.random()
    return 1.0 if u < win else 0.5 if u < win + draw_rate else 0.0


def _run(seed: int, elo: float, config: SprtConfig, draw_rate: float = 0.3, chunk: int = 8):
    """Play chunks until the test decides, as the evaluation does; the final result."""
    rng = random.Random(seed)
    counts: dict[float, int] = {}
    while True:
        for x, n in histogram(_game(rng, elo, draw_rate) for _ in range(chunk)).items():
            counts[x] = counts.get(x, 0) + n
        res = sprt(counts, config)
        if res.decided:
            return res


def test_without_draws_the_llr_is_the_binomial_one() -> None:
    s0, s1 = expected_score(CONFIG.elo0), expected_score(CONFIG.elo1)
    for wins, losses in ((10, 0), (30, 20), (3, 9)):
        binomial = wins * math.log(s1 / s0) + losses * math.log((1 - s1) / (1 - s0))
        assert llr({1.0: wins, 0.0: losses}, CONFIG) == pytest.approx(binomial, rel=1e-3)
    # ten straight wins between two close hypotheses are little evidence, not a certainty
    assert llr({1.0: 10}, CONFIG) == pytest.approx(10 * math.log(s1 / s0), rel=1e-3)


def test_bounds_verdicts_and_the_cap() -> None:
    lower, upper = CONFIG.bounds
    assert (lower, upper) == pytest.approx((math.log(0.05 / 0.95), math.log(0.95 / 0.05)))
    assert sprt({}, CONFIG).verdict == "continue" and sprt({}, CONFIG).llr == 0
    assert sprt({1.0: 300, 0.0: 100}, CONFIG).verdict == "pass"
    assert sprt({1.0: 100, 0.0: 200}, CONFIG).verdict == "fail"
    even = sprt({1.0: 100, 0.5: 3, 0.0: 100}, SprtConfig(max_games=200))
    assert even.verdict == "capped" and not even.passed and even.decided
    d = even.to_dict()
    assert d["games"] == 203 and d["verdict"] == "capped" and d["max_games"] == 200
    assert "LLR" in even.describe() and "capped" in even.describe()


def test_a_clearly_stronger_candidate_passes_early() -> None:
    results = [_run(seed, 200, CONFIG) for seed in range(50)]
    assert all(r.verdict == "pass" for r in results)
    assert max(r.games for r in results) <= 120  # well under the cap of 400


def test_an_equal_candidate_does_not_pass() -> None:
    results = [_run(seed, 0, CONFIG) for seed in range(100)]
    passed = sum(r.passed for r in results)
    assert passed <= 8  # alpha 0.05 over 100 runs, with room for chance
    assert all(r.verdict in ("fail", "capped") for r in results if not r.passed)


@pytest.mark.parametrize("draw_rate", [0.0, 0.3])
def test_alpha_and_beta_hold_over_many_runs(draw_rate: float) -> None:
    runs = 400
    false_pass = sum(_run(s, WIDE.elo0, WIDE, draw_rate, 4).passed for s in range(runs))
    false_fail = sum(not _run(s, WIDE.elo1, WIDE, draw_rate, 4).passed for s in range(runs))
    # the error rates must not exceed alpha and beta by more than three standard errors
    slack = 3 * math.sqrt(0.05 * 0.95 / runs)
    assert false_pass / runs <= WIDE.alpha + slack
    assert false_fail / runs <= WIDE.beta + slack


def test_rank_scores_of_three_and_four_players_count_as_they_are() -> None:
    # a four-player candidate always second of four scores 2/3: above an equal share
    res = sprt(histogram([2 / 3] * 200), SprtConfig(elo0=0, elo1=50))
    assert res.verdict == "pass" and res.mean_score == pytest.approx(2 / 3)
    res = sprt(histogram([1 / 3] * 200), SprtConfig(elo0=0, elo1=50))
    assert res.verdict == "fail"


def test_bad_settings_and_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="elo0 < elo1"):
        SprtConfig(elo0=10, elo1=10)
    with pytest.raises(ValueError, match="alpha"):
        SprtConfig(alpha=0.0)
    with pytest.raises(ValueError, match="max_games"):
        SprtConfig(max_games=0)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        histogram([1.5])
    with pytest.raises(ValueError, match="non-negative"):
        sprt({1.0: -1}, CONFIG)


def test_a_score_value_seen_in_no_game_changes_nothing() -> None:
    seen = {1.0: 14, 0.0: 6}
    config = SprtConfig()
    assert llr({**seen, 0.5: 0}, config) == pytest.approx(llr(seen, config))
    assert sprt({**seen, 0.5: 0}, config).verdict == sprt(seen, config).verdict

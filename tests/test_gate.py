"""The promotion gate's statistics and decisions."""

from __future__ import annotations

import pytest

from ringrift.pipeline.gate import GateConfig, MatchScore, Threshold, decide
from ringrift.pipeline.sprt import SprtConfig


def test_wilson_interval_matches_known_values() -> None:
    low, high = MatchScore("random", 100, 80, 20, 0).interval()
    assert low == pytest.approx(0.7112, abs=1e-4)
    assert high == pytest.approx(0.8666, abs=1e-4)
    assert MatchScore("random", 10, 4, 4, 2).score == 0.5


def test_gate_needs_both_score_and_lower_bound() -> None:
    gate = GateConfig({"random": Threshold(0.8, 0.7)})
    assert decide([MatchScore("random", 100, 85, 15, 0)], gate, has_best=False).promote
    # a high score from few games has a low lower bound
    assert not decide([MatchScore("random", 5, 5, 0, 0)], gate, has_best=False).promote
    assert not decide([MatchScore("random", 100, 75, 25, 0)], gate, has_best=False).promote


def test_best_applies_only_when_there_is_a_best() -> None:
    gate = GateConfig({"random": Threshold(0.5, 0.0), "best": Threshold(0.55, 0.5)})
    scores = [MatchScore("random", 10, 9, 1, 0), MatchScore("model-abc", 10, 4, 6, 0)]
    assert decide(scores, gate, has_best=False).promote
    d = decide(scores, gate, has_best=True)
    assert not d.promote and any(r.startswith("best:") and r.endswith("fail") for r in d.reasons)


def test_missing_evidence_never_promotes() -> None:
    gate = GateConfig({"random": Threshold(0.5, 0.0)})
    d = decide([], gate, has_best=False)
    assert not d.promote and d.reasons == ["no games against random"]


# ----- against the best: the sequential test -----------------------------------------------------

TEST = SprtConfig(elo0=0, elo1=20, alpha=0.05, beta=0.05, max_games=400)
FLOORS = GateConfig({"random": Threshold(0.8, 0.7)})
RANDOM = MatchScore("random", 100, 95, 5, 0)


def test_the_test_against_the_best_decides_and_its_numbers_are_kept() -> None:
    strong = MatchScore("model-g3", 200, 140, 60, 0)
    d = decide([RANDOM, strong], FLOORS, has_best=True, test=TEST)
    assert d.promote and d.sprt is not None and d.sprt.verdict == "pass"
    assert d.sprt.llr >= d.sprt.upper and d.sprt.games == 200
    assert any(r.startswith("best: SPRT elo0 0 / elo1 20") for r in d.reasons)
    weaker = MatchScore("model-g3", 300, 120, 180, 0)
    d = decide([RANDOM, weaker], FLOORS, has_best=True, test=TEST)
    assert not d.promote and d.sprt is not None and d.sprt.verdict == "fail"
    # an equal one is not told from elo1 = 20 in 400 games: capped, and with no threshold
    # against the best in the gate, rejected
    even = MatchScore("model-g3", 400, 200, 200, 0)
    d = decide([RANDOM, even], FLOORS, has_best=True, test=TEST)
    assert not d.promote and d.sprt is not None and d.sprt.verdict == "capped"
    # a floor still gates: the test passed, random was not beaten
    weak_floor = MatchScore("random", 100, 60, 40, 0)
    assert not decide([weak_floor, strong], FLOORS, has_best=True, test=TEST).promote


def test_at_the_cap_the_best_threshold_decides_and_without_one_the_candidate_is_rejected() -> None:
    capped = SprtConfig(elo0=0, elo1=100, alpha=0.1, beta=0.1, max_games=8)
    close = MatchScore("model-g3", 8, 5, 3, 0)  # 0.625: neither hypothesis accepted in 8 games
    d = decide([RANDOM, close], FLOORS, has_best=True, test=capped)
    assert d.sprt is not None and d.sprt.verdict == "capped" and not d.promote
    lenient = GateConfig({**FLOORS.thresholds, "best": Threshold(0.375, 0.1)})
    d = decide([RANDOM, close], lenient, has_best=True, test=capped)
    assert d.promote and any("at the cap, best: score 0.625" in r for r in d.reasons)


def test_an_undecided_test_or_no_games_against_the_best_never_promotes() -> None:
    few = MatchScore("model-g3", 10, 8, 2, 0)
    d = decide([RANDOM, few], FLOORS, has_best=True, test=TEST)
    assert d.sprt is not None and d.sprt.verdict == "continue" and not d.promote
    d = decide([RANDOM], FLOORS, has_best=True, test=TEST)
    assert not d.promote and d.sprt is not None and d.sprt.games == 0


def test_rank_scores_count_in_place_of_wins_and_draws() -> None:
    # four players: two games first (1.0), two shared second and third (0.5), four last (0)
    s = MatchScore("random", 8, 2, 6, 0, score_sum=3.0, histogram={1.0: 2, 0.5: 2, 0.0: 4})
    assert s.score == 0.375 and s.counts() == {1.0: 2, 0.5: 2, 0.0: 4}
    assert MatchScore("random", 4, 2, 1, 1).counts() == {1.0: 2, 0.5: 1, 0.0: 1}

"""The promotion gate's statistics and decisions."""

from __future__ import annotations

import pytest

from ringrift.pipeline.gate import GateConfig, MatchScore, Threshold, decide


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

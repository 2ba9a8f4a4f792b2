"""Evaluation in chunks: which chunks are due, and how recorded chunks add up."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ringrift.errors import ServiceError
from ringrift.pipeline.presets import TINY, preset
from ringrift.pipeline.sprt import SprtConfig
from ringrift.pipeline.state import (
    chunks,
    due_chunks,
    match_name,
    match_scores,
    parse_match_name,
)
from ringrift.store.models import EvaluationMatch

BEST = "model-square8_2p-g3"


def _row(opponent: str, first: int, wins: int, losses: int, draws: int = 0) -> EvaluationMatch:
    games = wins + losses + draws
    counts = {"1.0": wins, "0.5": draws, "0.0": losses}
    return EvaluationMatch(
        evaluation_id="eval-model-square8_2p-g4",
        config="square8_2p",
        candidate_id="model-square8_2p-g4",
        opponent=opponent,
        first_game=first,
        games=games,
        wins=wins,
        losses=losses,
        draws=draws,
        score=wins + 0.5 * draws,
        histogram=json.dumps({k: v for k, v in counts.items() if v}),
    )


def test_chunks_cover_the_match_once() -> None:
    assert chunks(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert chunks(8, 8) == [(0, 8)]
    assert sum(n for _, n in chunks(400, 32)) == 400


def test_a_chunk_name_round_trips() -> None:
    name = match_name("model-hex8_2p-g2", "model-hex8_2p-g1", 32)
    assert name == "eval-model-hex8_2p-g2/model-hex8_2p-g1@32"
    assert parse_match_name(name) == ("eval-model-hex8_2p-g2", "model-hex8_2p-g1", 32)
    with pytest.raises(ServiceError, match="not an evaluation chunk"):
        parse_match_name("eval-model-hex8_2p-g2/random")


def test_the_first_generation_plays_every_chunk_of_the_fixed_opponents() -> None:
    p = preset("tiny", "square8_2p")
    assert due_chunks(p, [], None) == [
        ["random", 0, 4],
        ["random", 4, 4],
        ["heuristic", 0, 4],
        ["heuristic", 4, 4],
    ]
    assert due_chunks(p, [_row("random", 0, 4, 0), _row("heuristic", 4, 2, 2)], None) == [
        ["random", 4, 4],
        ["heuristic", 0, 4],
    ]


def test_the_best_gets_one_wave_at_a_time_until_its_test_decides() -> None:
    p = replace(
        TINY,
        eval_chunk_games=10,
        sprt=SprtConfig(elo0=0, elo1=100, alpha=0.05, beta=0.05, max_games=60),
        sprt_wave=2,
    )
    floors = [_row(o, f, 10, 0) for o in ("random", "heuristic") for f in range(0, 8, 10)]
    assert due_chunks(p, floors, BEST) == [[BEST, 0, 10], [BEST, 10, 10]]
    played = [*floors, _row(BEST, 0, 6, 4), _row(BEST, 10, 5, 5)]
    assert due_chunks(p, played, BEST) == [[BEST, 20, 10], [BEST, 30, 10]]
    # the test decided (a clear pass): nothing more against the best
    decided = [*floors, *(_row(BEST, f, 10, 0) for f in range(0, 40, 10))]
    assert due_chunks(p, decided, BEST) == []
    # the cap: 60 games played undecided
    capped = [*floors, *(_row(BEST, f, 5, 5) for f in range(0, 60, 10))]
    assert due_chunks(p, capped, BEST) == []


def test_chunks_add_up_per_opponent_with_their_score_values_merged() -> None:
    rows = [_row("random", 0, 3, 1), _row("random", 4, 2, 1, 1), _row(BEST, 0, 1, 2, 1)]
    scores = match_scores(rows)
    r = scores["random"]
    assert (r.games, r.wins, r.losses, r.draws) == (8, 5, 2, 1)
    assert r.score == pytest.approx(5.5 / 8)
    assert r.counts() == {0.0: 2, 0.5: 1, 1.0: 5}
    assert scores[BEST].counts() == {0.0: 2, 0.5: 1, 1.0: 1}
    # a row recorded before chunks (no score, no histogram) counts its wins and draws
    old = _row("heuristic", 0, 3, 1, 0)
    old.score, old.histogram = None, None
    assert match_scores([old])["heuristic"].counts() == {0.0: 1, 1.0: 3}

"""Batched evaluation matches: a game played in a batch is the game played alone, a chunk of a
match is those games of the whole match, each network is called once per wave with every game's
positions, seats rotate, and rank scores share ties."""

from __future__ import annotations

import pytest

from ringrift.ai import RandomPlayer
from ringrift.ai.gumbel import GumbelConfig
from ringrift.ai.match import (
    FixedSide,
    GameOutcome,
    MatchSettings,
    NetSide,
    play_match_batched,
    rank_score,
)
from ringrift.game import GameConfig
from tests.test_gumbel import CountingEvaluator, HashEvaluator

SQUARE8 = GameConfig.parse("square8_2p")
SETTINGS = MatchSettings(GumbelConfig(simulations=8, considered=4), 8, 2, max_moves=24)


def _key(g: GameOutcome) -> tuple[object, ...]:
    return (g.index, g.seat, g.winner, g.ranks, g.moves, g.score, g.final)


def test_rank_scores_run_from_one_for_first_to_zero_for_last_and_ties_share() -> None:
    assert (rank_score([1, 2], 1), rank_score([1, 2], 2)) == (1.0, 0.0)
    assert rank_score([1, 1], 2) == 0.5
    assert [rank_score([2, 1, 3], s) for s in (1, 2, 3)] == [0.5, 1.0, 0.0]
    assert rank_score([1, 2, 2], 2) == pytest.approx(0.25)  # shares second and third
    assert rank_score([1, 1, 3, 4], 1) == pytest.approx((1 + 2 / 3) / 2)
    assert rank_score([1, 2, 3, 3], 4) == pytest.approx((1 / 3 + 0) / 2)
    assert sum(rank_score([1, 2, 2, 4], s) for s in range(1, 5)) == pytest.approx(2.0)


def test_a_batched_game_is_the_game_played_alone_and_a_chunk_is_part_of_the_match() -> None:
    cand, best = NetSide("cand", HashEvaluator()), NetSide("best", HashEvaluator())
    whole = play_match_batched(SQUARE8, cand, best, range(6), 11, SETTINGS)
    alone = [
        play_match_batched(
            SQUARE8, cand, best, [g], 11, MatchSettings(SETTINGS.search, 1, 2, max_moves=24)
        ).games[0]
        for g in range(6)
    ]
    chunk = play_match_batched(SQUARE8, cand, best, [4, 5], 11, SETTINGS)
    assert [_key(g) for g in whole.games] == [_key(g) for g in alone]
    assert [_key(g) for g in chunk.games] == [_key(g) for g in whole.games[4:]]
    assert [g.seat for g in whole.games] == [1, 2, 1, 2, 1, 2]
    other_seed = play_match_batched(SQUARE8, cand, best, range(6), 12, SETTINGS)
    assert [_key(g) for g in other_seed.games] != [_key(g) for g in whole.games]


def test_each_network_gets_one_call_per_wave_with_every_waiting_game() -> None:
    cand = CountingEvaluator(HashEvaluator())
    best = CountingEvaluator(HashEvaluator())
    out = play_match_batched(
        SQUARE8, NetSide("cand", cand), NetSide("best", best), range(8), 3, SETTINGS
    )
    assert out.timers.batches == len(cand.batches) + len(best.batches)
    assert out.timers.evaluations == sum(cand.batches) + sum(best.batches)
    assert cand.batches and best.batches
    # eight games in flight: the first wave holds every game's root position, split by seat
    assert cand.batches[0] + best.batches[0] == 8
    assert max(cand.batches) > SETTINGS.search.considered


def test_a_side_without_a_network_moves_at_once_and_results_add_up() -> None:
    cand = CountingEvaluator(HashEvaluator())
    rival = FixedSide("random", RandomPlayer)
    config = GameConfig.parse("hex8_3p")
    out = play_match_batched(config, NetSide("cand", cand), rival, range(6), 5, SETTINGS)
    res = out.result()
    assert res.games == 6 == res.wins + res.losses + res.draws
    assert [g.seat for g in out.games] == [1, 2, 3, 1, 2, 3]
    assert all(0.0 <= g.score <= 1.0 for g in out.games)
    assert out.timers.batches == len(cand.batches)  # only the candidate has a network
    for g in out.games:
        assert len(g.ranks) == 3 and g.moves <= 24


def test_bad_sides_and_settings_are_refused() -> None:
    net = NetSide("cand", HashEvaluator())
    with pytest.raises(ValueError, match="cannot play itself"):
        play_match_batched(SQUARE8, net, NetSide("cand", HashEvaluator()), [0], 1, SETTINGS)
    with pytest.raises(ValueError, match="network side"):
        play_match_batched(SQUARE8, FixedSide("random", RandomPlayer), net, [0], 1, SETTINGS)
    with pytest.raises(ValueError, match="parallel_games"):
        MatchSettings(parallel_games=0)

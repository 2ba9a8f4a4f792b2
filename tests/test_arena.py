"""Matches: seat rotation and result bookkeeping."""

from __future__ import annotations

from ringrift.ai import HeuristicPlayer, RandomPlayer
from ringrift.ai.arena import MCTSPlayer, play_match
from ringrift.ai.mcts import SearchConfig, UniformEvaluator
from ringrift.game import GameConfig


def test_results_add_up_and_repeat_from_the_seed() -> None:
    cfg = GameConfig.parse("square8_3p")
    a = play_match(cfg, RandomPlayer, RandomPlayer, 6, seed=4)
    assert a.games == 6 and a.wins + a.losses + a.draws == 6
    assert a == play_match(cfg, RandomPlayer, RandomPlayer, 6, seed=4)


def test_search_player_plays_legal_games() -> None:
    cfg = GameConfig.parse("hex8_2p")

    def candidate(seed: int) -> MCTSPlayer:
        return MCTSPlayer(UniformEvaluator(), SearchConfig(simulations=8), seed, "mcts")

    res = play_match(cfg, candidate, HeuristicPlayer, 2, seed=1)
    assert res.games == 2

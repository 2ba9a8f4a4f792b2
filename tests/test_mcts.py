"""The search: finds an immediate win, and its visit policy is a distribution over actions."""

from __future__ import annotations

import random

import pytest

from ringrift.ai.mcts import (
    MCTS,
    SearchConfig,
    UniformEvaluator,
    choose_move,
    terminal_values,
    visit_policy,
)
from ringrift.game import GameConfig, GameState, apply_move, legal_moves
from ringrift.game.actions import action_space
from ringrift.game.serialize import state_from_json


def _near_win() -> GameState:
    # Player 1 has 17 of the 18 rings needed; landing on the marker at 0,3 eliminates one more.
    return state_from_json(
        {
            "board": {
                "type": "square8",
                "size": 8,
                "stacks": {"0,0": {"rings": [1, 1]}, "7,7": {"rings": [2]}},
                "markers": {"0,3": {"player": 2}},
                "collapsedSpaces": {},
            },
            "players": [
                {"playerNumber": 1, "ringsInHand": 0, "eliminatedRings": 17, "territorySpaces": 0},
                {"playerNumber": 2, "ringsInHand": 0, "eliminatedRings": 0, "territorySpaces": 0},
            ],
            "currentPlayer": 1,
            "currentPhase": "movement",
            "gameStatus": "active",
        }
    )


def test_search_finds_the_winning_move() -> None:
    state = _near_win()
    search = MCTS(UniformEvaluator(), SearchConfig(simulations=200), random.Random(0))
    root = search.search(state, add_noise=False)
    move = choose_move(root, 0.0, random.Random(0))
    assert state.geo.keys[move.to] == "0,3"
    apply_move(state, move)
    assert state.is_over and state.winner == 1


def test_visit_policy_is_a_distribution_over_legal_actions() -> None:
    state = GameState.initial(GameConfig.parse("hex8_3p"))
    root = MCTS(UniformEvaluator(), SearchConfig(simulations=48), random.Random(2)).search(state)
    policy = visit_policy(root)
    assert abs(sum(p for _, p in policy) - 1.0) < 1e-9
    space = action_space(state.geo.board)
    legal = {space.encode(m) for m in legal_moves(state)}
    assert {a for a, _ in policy} <= legal
    assert root.total_visits == 48


def test_terminal_values_follow_ranks() -> None:
    state = GameState.initial(GameConfig.parse("square8_4p"))
    state.ranks = (2, 1, 4, 2)
    assert list(terminal_values(state)) == pytest.approx([1 / 3, 1.0, -1.0, 1 / 3])

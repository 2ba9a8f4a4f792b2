"""Seeded random games on all twelve configurations, invariants checked after every move."""

from __future__ import annotations

import random

import pytest

from ringrift.game import ALL_CONFIGS, GameConfig, GameState, apply_move, legal_moves
from tests.invariants import check_invariants


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_random_game_reaches_terminal_state(config: str) -> None:
    cfg = GameConfig.parse(config)
    games = 3 if cfg.geometry.num_cells < 100 else 1
    for seed in range(games):
        rng = random.Random(seed)
        state = GameState.initial(cfg)
        progress = state.progress()
        while not state.is_over:
            moves = legal_moves(state)
            assert moves == legal_moves(state), "legal move order must be stable"
            apply_move(state, rng.choice(moves))
            check_invariants(state)
            now = state.progress()
            assert now >= progress, "S = markers + collapsed + eliminated decreased"
            progress = now
        assert state.move_count <= cfg.max_moves
        assert state.victory is not None and state.ranks is not None
        assert sorted(state.ranks)[0] == 1
        if state.winner is not None:
            assert state.ranks[state.winner - 1] == 1

"""The action-index space: in range, one index per legal move (or per identical effect),
decodes back."""

from __future__ import annotations

import random

import pytest

from ringrift.game import ALL_CONFIGS, BoardType, GameConfig, GameState, apply_move, legal_moves
from ringrift.game.actions import (
    action_space,
    decode_action,
    encode_move,
    legal_action_moves,
)
from ringrift.game.fingerprint import fingerprint
from ringrift.game.moves import Move, MoveType


def test_space_sizes_are_fixed_per_board() -> None:
    assert action_space(BoardType.SQUARE8).size == 64 * (3 + 8 * 7 + 16 + 8 + 6) + 9
    assert action_space(BoardType.HEX8).size == 81 * (3 + 6 * 8 + 12 + 6 + 6) + 9


@pytest.mark.parametrize("config", ["square8_2p", "hex8_3p", "square8_4p", "hex8_2p"])
def test_every_legal_move_has_its_own_index(config: str) -> None:
    cfg = GameConfig.parse(config)
    space = action_space(cfg.board)
    rng = random.Random(7)
    for seed in range(2):
        rng.seed(seed)
        state = GameState.initial(cfg)
        while not state.is_over and state.move_count < 600:
            groups = legal_action_moves(state)
            for action, moves in groups.items():
                assert 0 <= action < space.size
                if len(moves) > 1:
                    _same_action(state, moves)
            move = rng.choice(legal_moves(state))
            action = encode_move(state, move)
            assert decode_action(state, action) == groups[action][0]
            apply_move(state, move)


def _same_action(state: GameState, moves: list[Move]) -> None:
    """Moves may share an index only as a recovery's open choice, or as the two spellings of
    collapsing a whole line (``process_line`` and ``choose_line_option`` option 1), which
    must then do exactly the same thing."""
    kinds = {m.type for m in moves}
    if kinds == {MoveType.RECOVERY_SLIDE}:
        return
    assert kinds == {MoveType.PROCESS_LINE, MoveType.CHOOSE_LINE_OPTION}, moves
    assert len({(m.cells, m.collapse, m.option) for m in moves}) == 1, moves
    after = set()
    for m in moves:
        copy = state.copy()
        apply_move(copy, m)
        after.add(fingerprint(copy))
    assert len(after) == 1


def test_all_configs_have_a_space() -> None:
    for name in ALL_CONFIGS:
        assert action_space(GameConfig.parse(name).board).size > 0

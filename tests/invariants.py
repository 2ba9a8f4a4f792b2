"""Position invariants the engine must keep after every move; used by several tests."""

from __future__ import annotations

from ringrift.game import GameState, legal_moves
from ringrift.game.state import cap_height


def check_invariants(state: GameState) -> None:
    cfg = state.config
    n = cfg.num_players
    stacks = state.stacks
    assert state.stack_cells == {c for c, s in enumerate(stacks) if s}
    for c, s in enumerate(stacks):
        if s:
            assert all(1 <= r <= n for r in s), f"bad ring colour in {s}"
            assert 1 <= cap_height(s) <= len(s)
            assert not state.markers[c] and not state.collapsed[c], f"cell {c} holds two things"
        if state.markers[c]:
            assert not state.collapsed[c], f"cell {c} is a marker and collapsed"
    for p in range(1, n + 1):
        on_board = sum(s.count(p) for s in stacks)
        total = state.hand[p] + on_board + state.lost[p]
        assert total == cfg.rings_per_player, f"player {p} rings: {total} != {cfg.rings_per_player}"
        assert state.territory[p] == state.collapsed.count(p)
        assert state.hand[p] >= 0
    assert sum(state.eliminated) == sum(state.lost)
    if not state.is_over:
        moves = legal_moves(state)
        assert moves, f"no legal move for player {state.current} in {state.phase}"
        assert all(m.player == state.current for m in moves), "a move for the wrong player"

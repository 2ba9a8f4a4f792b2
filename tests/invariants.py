"""Position invariants the engine must keep after every move; used by several tests.

A game from the standard start must satisfy them exactly. A position loaded from someone else's
JSON may start inconsistent (hand + board + eliminated != rings per player, credits that do not
match, territory counts that disagree with the collapsed cells); for those, ``Baseline`` records
the starting discrepancies and play must keep them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringrift.game import GameState, legal_moves
from ringrift.game.state import cap_height


def ring_totals(state: GameState) -> list[int]:
    """Per colour: rings in hand + on the board + eliminated."""
    return [
        state.hand[p] + sum(s.count(p) for s in state.stacks) + state.lost[p]
        for p in range(1, state.num_players + 1)
    ]


def credit_gap(state: GameState) -> int:
    """Rings credited as eliminated minus rings of any colour eliminated."""
    return sum(state.eliminated) - sum(state.lost)


def territory_gaps(state: GameState) -> list[int]:
    return [state.territory[p] - state.collapsed.count(p) for p in range(1, state.num_players + 1)]


@dataclass(frozen=True)
class Baseline:
    totals: list[int]
    credit_gap: int
    territory_gaps: list[int]

    @classmethod
    def of(cls, state: GameState) -> Baseline:
        return cls(ring_totals(state), credit_gap(state), territory_gaps(state))

    @classmethod
    def standard(cls, state: GameState) -> Baseline:
        n = state.num_players
        return cls([state.config.rings_per_player] * n, 0, [0] * n)


def check_invariants(state: GameState, baseline: Baseline | None = None) -> None:
    base = baseline or Baseline.standard(state)
    n = state.num_players
    stacks = state.stacks
    assert state.stack_cells == {c for c, s in enumerate(stacks) if s}
    for c, s in enumerate(stacks):
        if s:
            assert all(1 <= r <= n for r in s), f"bad ring colour in {s}"
            assert 1 <= cap_height(s) <= len(s)
            assert not state.markers[c] and not state.collapsed[c], f"cell {c} holds two things"
        if state.markers[c]:
            assert not state.collapsed[c], f"cell {c} is a marker and collapsed"
    assert ring_totals(state) == base.totals, f"ring totals {ring_totals(state)} != {base.totals}"
    assert credit_gap(state) == base.credit_gap, "eliminated rings and their credits drifted"
    assert territory_gaps(state) == base.territory_gaps, "territory counts drifted"
    assert all(state.hand[p] >= 0 for p in range(1, n + 1))
    if not state.is_over:
        moves = legal_moves(state)
        assert moves, f"no legal move for player {state.current} in {state.phase}"
        assert all(m.player == state.current for m in moves), "a move for the wrong player"

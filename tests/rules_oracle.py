"""A slow, literal second reading of the movement, capture and placement rules, for checking the
engine's fast move generator (RULES_CANONICAL_SPEC R080-R082, R091, R101, with the canonical
engine's no-dead-placement test for a new stack on an empty cell).

Everything here walks the board cell by cell from the rule text and shares nothing with
``ringrift.game.movegen`` but the board geometry.
"""

from __future__ import annotations

from ringrift.game import GameState


def _cap(stack: tuple[int, ...]) -> int:
    top = stack[-1]
    n = 0
    for ring in reversed(stack):
        if ring != top:
            break
        n += 1
    return n


def _blocked(state: GameState, cell: int) -> bool:
    return bool(state.collapsed[cell] or state.stacks[cell])


def stack_options(
    state: GameState, frm: int, cap_bonus: int = 0
) -> tuple[set[int], set[tuple[int, int]]]:
    """(landings of non-capture moves, (target, landing) of capture segments) for the stack at
    ``frm``: R091 and R101 read literally (``cap_bonus`` raises the cap it may capture)."""
    stack = state.stacks[frm]
    height, cap = len(stack), _cap(stack) + cap_bonus
    moves: set[int] = set()
    captures: set[tuple[int, int]] = set()
    for ray in state.geo.rays[frm]:
        # R091: every cell up to the landing free of stacks and collapsed spaces; d >= H.
        for k, cell in enumerate(ray, start=1):
            if _blocked(state, cell):
                break
            if k >= height:
                moves.add(cell)
        # R101: the first stack along the ray is the only possible target.
        for t, target in enumerate(ray):
            if state.collapsed[target]:
                break
            if not state.stacks[target]:
                continue
            if _cap(state.stacks[target]) <= cap:
                for k in range(t + 1, len(ray)):
                    landing = ray[k]
                    if _blocked(state, landing):
                        break
                    if k + 1 >= height:
                        captures.add((target, landing))
            break
    return moves, captures


def placement_options(state: GameState, player: int) -> set[tuple[int, int]]:
    """(cell, rings) of every legal placement (R080-R082 with the no-dead-placement rule):
    1-3 rings on an empty cell, 1 on any stack, within the hand and the colour's supply, and
    the stack placed must then have a move or a capture."""
    hand = state.hand[player]
    on_board = sum(s.count(player) for s in state.stacks)
    limit = min(hand, 3, state.config.rings_per_player - on_board)
    out: set[tuple[int, int]] = set()
    for cell in range(state.geo.num_cells):
        if state.collapsed[cell]:
            continue
        if state.stacks[cell]:
            counts = [1] if limit >= 1 else []
        elif state.markers[cell]:
            counts = []
        else:
            counts = list(range(1, limit + 1))
        for rings in counts:
            trial = state.copy()
            trial.set_stack(cell, state.stacks[cell] + (player,) * rings)
            # The canonical engine lets a new stack on an empty cell count captures of a cap
            # one higher than its own (its recorded games show it; see movegen.placements).
            bonus = 0 if state.stacks[cell] else 1
            moves, captures = stack_options(trial, cell, cap_bonus=bonus)
            if moves or captures:
                out.add((cell, rings))
    return out

"""A one-ply heuristic player: tries every legal move and keeps the best-scoring position.

The evaluation is from the mover's point of view, a weighted sum of these features (each for the
mover minus the strongest opponent):

=====================  ======  ===============================================================
feature                weight  why
=====================  ======  ===============================================================
eliminated rings        10.0   the ring-elimination victory counts them
territory spaces         6.0   the territory victory counts them; collapses are permanent
rings under control      2.0   captured rings add height and cap; material for later turns
stacks under control     4.0   each stack is a piece that can move; no stacks, no real actions
capture exposure        -3.0   own stacks an opponent's stack can capture next turn (own only)
markers                  0.5   future lines and territory borders
=====================  ======  ===============================================================

A win scores +1e6 and a loss -1e6. Ties are broken at random (seeded), so games vary.
"""

from __future__ import annotations

import random

from ringrift.game import GameState, Move, apply_move_unchecked, legal_moves
from ringrift.game.movegen import stack_moves
from ringrift.game.moves import MoveType

W_ELIMINATED = 10.0
W_TERRITORY = 6.0
W_CONTROL = 2.0
W_STACKS = 4.0
W_EXPOSURE = -3.0
W_MARKERS = 0.5
WIN = 1e6


def _exposure(state: GameState, player: int) -> int:
    """How many of ``player``'s stacks some opponent stack could capture right now."""
    stacks = state.stacks
    hit: set[int] = set()
    out: list[Move] = []
    for c in state.stack_cells:
        if stacks[c][-1] != player:
            out.clear()
            stack_moves(state, c, out, captures_only=True)
            for m in out:
                if stacks[m.target][-1] == player:
                    hit.add(m.target)
    return len(hit)


def evaluate(state: GameState, player: int) -> float:
    """Score ``state`` for ``player``: higher is better."""
    if state.is_over:
        if state.winner == player:
            return WIN
        return -WIN if state.winner is not None else 0.0
    n = state.num_players
    control = [0] * (n + 1)
    owned = [0] * (n + 1)
    stacks = state.stacks
    for c in state.stack_cells:
        s = stacks[c]
        control[s[-1]] += len(s)
        owned[s[-1]] += 1
    markers = [0] * (n + 1)
    for o in state.markers:
        markers[o] += 1

    def raw(p: int) -> float:
        return (
            W_ELIMINATED * state.eliminated[p]
            + W_TERRITORY * state.territory[p]
            + W_CONTROL * control[p]
            + W_STACKS * owned[p]
            + W_MARKERS * markers[p]
        )

    best_opponent = max(raw(q) for q in range(1, n + 1) if q != player)
    return raw(player) - best_opponent + W_EXPOSURE * _exposure(state, player)


class HeuristicPlayer:
    name = "heuristic"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def choose(self, state: GameState) -> Move:
        moves = legal_moves(state)
        if len(moves) == 1:
            return moves[0]
        player = state.current
        best: list[Move] = []
        best_score = -float("inf")
        for m in moves:
            if m.type is MoveType.SWAP_SIDES:
                continue
            child = state.copy()
            apply_move_unchecked(child, m)
            score = evaluate(child, player)
            if score > best_score:
                best_score, best = score, [m]
            elif score == best_score:
                best.append(m)
        return self.rng.choice(best or moves)

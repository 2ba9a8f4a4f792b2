"""The uniform random player: every legal move equally likely, reproducible from a seed."""

from __future__ import annotations

import random

from ringrift.game import GameState, Move, legal_moves


class RandomPlayer:
    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def choose(self, state: GameState) -> Move:
        return self.rng.choice(legal_moves(state))

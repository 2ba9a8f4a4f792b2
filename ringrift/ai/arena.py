"""Matches between players: the candidate in one seat (rotating game by game), opponents in
the others. Used by evaluation and by the heuristic benchmark."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ringrift.ai.mcts import MCTS, Evaluator, SearchConfig, choose_move
from ringrift.game import GameConfig, GameState, Move, apply_move_unchecked, legal_moves


class Player(Protocol):
    name: str

    def choose(self, state: GameState) -> Move: ...


class MCTSPlayer:
    """Plays the most visited move of a noise-free search.

    The first ``opening_moves`` decisions are sampled in proportion to visits instead (seeded),
    so that a match between two deterministic searches is not the same game repeated.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        search: SearchConfig,
        seed: int,
        name: str,
        opening_moves: int = 0,
    ) -> None:
        self.name = name
        self.rng = random.Random(seed)
        self.search = MCTS(evaluator, search, self.rng)
        self.opening_moves = opening_moves
        self.decisions = 0

    def choose(self, state: GameState) -> Move:
        moves = legal_moves(state)
        if len(moves) == 1:
            return moves[0]
        temperature = 1.0 if self.decisions < self.opening_moves else 0.0
        self.decisions += 1
        return choose_move(self.search.search(state, add_noise=False), temperature, self.rng)


@dataclass
class MatchResult:
    games: int = 0
    wins: int = 0
    losses: int = 0
    draws: int = 0

    def add(self, winner: int | None, ranks: Sequence[int] | None, seat: int) -> None:
        """Count one game for the player in ``seat``: a win is finishing first alone, a draw a
        game without a winner in which it shares first place, anything else a loss."""
        self.games += 1
        if winner == seat:
            self.wins += 1
        elif winner is None and ranks and ranks[seat - 1] == 1:
            self.draws += 1
        else:
            self.losses += 1


PlayerFactory = Callable[[int], Player]  # seed -> player


def play_match(
    config: GameConfig,
    candidate: PlayerFactory,
    opponent: PlayerFactory,
    games: int,
    seed: int,
) -> MatchResult:
    """``games`` games; the candidate sits in seat ``1 + g % n`` of game ``g``.

    A win is the candidate winning outright; a game without a winner in which the candidate
    shares first place is a draw; anything else is a loss.
    """
    n = config.num_players
    res = MatchResult()
    for g in range(games):
        seat = 1 + g % n
        base = seed * 1_000_003 + g * 101
        players = {p: opponent(base + p) for p in range(1, n + 1)}
        players[seat] = candidate(base)
        state = GameState.initial(config)
        while not state.is_over:
            apply_move_unchecked(state, players[state.current].choose(state))
        res.add(state.winner, state.ranks, seat)
    return res

"""Engine benchmark: seeded uniformly random games on one core for a fixed time."""

from __future__ import annotations

import collections
import random
import time
from dataclasses import dataclass, field

from ringrift.game import GameConfig, GameState, apply_move_unchecked, legal_moves


@dataclass
class EngineBenchResult:
    config: str
    seconds: float
    seed: int
    moves: int = 0
    games: int = 0
    game_moves: int = 0  # moves of completed games only
    victory_types: dict[str, int] = field(default_factory=dict)

    @property
    def moves_per_s(self) -> float:
        return self.moves / self.seconds if self.seconds else 0.0

    @property
    def games_per_s(self) -> float:
        return self.games / self.seconds if self.seconds else 0.0

    @property
    def avg_moves(self) -> float:
        return self.game_moves / self.games if self.games else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "config": self.config,
            "seconds": round(self.seconds, 3),
            "seed": self.seed,
            "moves_per_s": round(self.moves_per_s, 1),
            "games_per_s": round(self.games_per_s, 3),
            "avg_moves": round(self.avg_moves, 1),
            "games": self.games,
            "moves": self.moves,
            "victory_types": self.victory_types,
        }


def bench_engine(config: str, seconds: float, seed: int) -> EngineBenchResult:
    """Play random games until ``seconds`` pass; every applied move counts, bookkeeping too.

    Each move costs one full legal-move generation plus one unchecked apply, as in selfplay.
    A game still running when time is up counts towards moves but not towards games.
    """
    cfg = GameConfig.parse(config)
    rng = random.Random(seed)
    victories: collections.Counter[str] = collections.Counter()
    moves = games = game_moves = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        state = GameState.initial(cfg)
        while not state.is_over:
            apply_move_unchecked(state, rng.choice(legal_moves(state)))
            moves += 1
            if moves % 64 == 0 and time.perf_counter() >= deadline:
                break
        if not state.is_over:
            break
        games += 1
        game_moves += state.move_count
        victories[state.victory.value if state.victory else "unknown"] += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    return EngineBenchResult(config, elapsed, seed, moves, games, game_moves, dict(victories))


@dataclass
class MatchResult:
    config: str
    games: int
    seed: int
    wins: int = 0
    losses: int = 0
    draws: int = 0
    seconds: float = 0.0

    @property
    def win_rate(self) -> float:
        return self.wins / self.games if self.games else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "config": self.config,
            "games": self.games,
            "seed": self.seed,
            "heuristic_wins": self.wins,
            "heuristic_losses": self.losses,
            "draws": self.draws,
            "win_rate": round(self.win_rate, 4),
            "seconds": round(self.seconds, 2),
        }


def bench_heuristic(config: str, games: int, seed: int) -> MatchResult:
    """The heuristic player against uniform random players, seats rotating game by game."""
    from ringrift.ai import HeuristicPlayer, RandomPlayer
    from ringrift.ai.arena import play_match

    start = time.perf_counter()
    m = play_match(GameConfig.parse(config), HeuristicPlayer, RandomPlayer, games, seed)
    res = MatchResult(config, games, seed, m.wins, m.losses, m.draws)
    res.seconds = time.perf_counter() - start
    return res

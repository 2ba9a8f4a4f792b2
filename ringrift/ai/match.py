"""Evaluation matches played the way selfplay plays: many games in flight at once, and in each
wave every network's waiting positions evaluated in one call (the candidate's in one batch, the
opponent's in another).

A searching side plays Gumbel search without exploration noise: the move it plays is the search's
best. So that games between two deterministic searches differ, each searching side samples its
first ``opening_moves`` decisions (Gumbel noise on, as selfplay does). Sides without a network
(random, the heuristic) move at once. The candidate sits in seat ``1 + g % n`` of game ``g``;
each game is scored for the candidate by its rank (``rank_score``), and a game's moves depend
only on its seed and the evaluations it is given, so a game played in a batch is the game played
alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ringrift.ai.arena import MatchResult, Player
from ringrift.ai.gumbel import Evaluation, GumbelConfig, Leaves, SearchGen, gumbel_search
from ringrift.ai.heuristic import HeuristicPlayer
from ringrift.ai.mcts import Evaluator
from ringrift.ai.random_player import RandomPlayer
from ringrift.game import (
    GameConfig,
    GameState,
    Move,
    apply_move_unchecked,
    fingerprint,
    legal_moves,
)


@dataclass(frozen=True)
class MatchSettings:
    search: GumbelConfig = GumbelConfig()
    parallel_games: int = 32  # games in flight, their positions batched per network
    opening_moves: int = 4  # each searching side's sampled first decisions
    max_moves: int | None = None  # stop games early (tests); None: the rules' move cap

    def __post_init__(self) -> None:
        if self.parallel_games < 1 or self.opening_moves < 0:
            raise ValueError("MatchSettings needs parallel_games >= 1 and opening_moves >= 0")


@dataclass(frozen=True)
class NetSide:
    """A side that searches with a network."""

    name: str
    evaluator: Evaluator


@dataclass(frozen=True)
class FixedSide:
    """A side without a network: ``make(seed)`` gives its player for one seat of one game."""

    name: str
    make: Callable[[int], Player]


Side = NetSide | FixedSide

BASELINES: dict[str, Callable[[int], Player]] = {
    "random": RandomPlayer,
    "heuristic": HeuristicPlayer,
}


def baseline_side(name: str) -> FixedSide:
    """The side of a baseline opponent without a network (``random``, ``heuristic``)."""
    return FixedSide(name, BASELINES[name])


@dataclass(frozen=True)
class GameOutcome:
    index: int  # the game's number within its match
    seat: int  # the candidate's seat
    winner: int | None
    ranks: tuple[int, ...]
    moves: int
    score: float  # the candidate's rank score: 1 first, 0 last, ties shared
    final: str  # the fingerprint of the last position
    finished: bool  # ended by the rules (not stopped at ``max_moves``)


@dataclass
class MatchTimers:
    network_s: float = 0.0
    total_s: float = 0.0
    evaluations: int = 0
    batches: int = 0


@dataclass
class MatchOutcome:
    games: list[GameOutcome] = field(default_factory=list)
    timers: MatchTimers = field(default_factory=MatchTimers)

    def result(self) -> MatchResult:
        """Wins, losses and draws: a win is finishing first alone, a draw sharing first place."""
        res = MatchResult()
        for g in self.games:
            res.add(g.winner, g.ranks, g.seat)
        return res


def rank_score(ranks: Sequence[int], seat: int) -> float:
    """The score of ``seat`` given competition ranks (``1 2 2 4``): finishing position ``k`` of
    ``n`` is worth ``(n - k) / (n - 1)``, and players tied share the positions they span."""
    n = len(ranks)
    if not ranks:
        return 0.0
    rank = ranks[seat - 1]
    tied = sum(1 for r in ranks if r == rank)
    positions = range(rank, rank + tied)
    return sum((n - k) / (n - 1) for k in positions) / tied


def outcome_score(state: GameState, seat: int) -> tuple[tuple[int, ...], float]:
    """A finished game's ranks and ``seat``'s score; a game without ranks (stopped early)
    counts as every player tied."""
    n = state.config.num_players
    ranks = tuple(state.ranks) if state.ranks else (1,) * n
    return ranks, rank_score(ranks, seat)


class _Game:
    def __init__(
        self,
        config: GameConfig,
        index: int,
        seed: int,
        candidate: Side,
        opponent: Side,
        settings: MatchSettings,
    ) -> None:
        n = config.num_players
        self.index = index
        self.seat = 1 + index % n
        self.state = GameState.initial(config)
        self.settings = settings
        self.limit = settings.max_moves or config.max_moves
        self.sides = {p: candidate if p == self.seat else opponent for p in range(1, n + 1)}
        self.fixed = {
            p: s.make(seed * 7919 + p) for p, s in self.sides.items() if isinstance(s, FixedSide)
        }
        self.rngs = {p: np.random.default_rng([seed, p, 0x5EA7]) for p in self.sides}
        self.decisions = dict.fromkeys(self.sides, 0)
        self.search: SearchGen | None = None
        self.waiting_on = ""

    def advance(self, answers: list[Evaluation] | None) -> tuple[str, Leaves] | None:
        """Feed the running search its ``answers`` and play on until a network is needed
        (its name and the positions) or the game ends (None)."""
        if self.search is not None:
            assert answers is not None
            try:
                return self.waiting_on, self.search.send(answers)
            except StopIteration as done:
                self.search = None
                self._play(done.value.move)
        state = self.state
        while not state.is_over and state.move_count < self.limit:
            player = state.current
            side = self.sides[player]
            if isinstance(side, FixedSide):
                self._play(self.fixed[player].choose(state))
                continue
            moves = legal_moves(state)
            if len(moves) == 1:
                self._play(moves[0])
                continue
            scale = 1.0 if self.decisions[player] < self.settings.opening_moves else 0.0
            self.decisions[player] += 1
            self.search = gumbel_search(
                state, self.settings.search, self.rngs[player], gumbel_scale=scale, moves=moves
            )
            self.waiting_on = side.name
            return side.name, next(self.search)
        return None

    def _play(self, move: Move) -> None:
        apply_move_unchecked(self.state, move)

    def outcome(self) -> GameOutcome:
        ranks, score = outcome_score(self.state, self.seat)
        state = self.state
        return GameOutcome(
            self.index,
            self.seat,
            state.winner,
            ranks,
            state.move_count,
            score,
            fingerprint(state),
            state.is_over,
        )


def play_match_batched(
    config: GameConfig,
    candidate: Side,
    opponent: Side,
    games: Sequence[int],
    seed: int,
    settings: MatchSettings,
) -> MatchOutcome:
    """Play the games numbered ``games`` (a chunk of a longer match keeps its numbers, so its
    seats and seeds are the ones the whole match would give them), ``settings.parallel_games``
    at a time; outcomes in the order given."""
    if candidate.name == opponent.name:
        raise ValueError(f"a side cannot play itself: both are named {candidate.name!r}")
    if not isinstance(candidate, NetSide):
        raise ValueError("the candidate must be a network side")
    evaluators = {s.name: s.evaluator for s in (candidate, opponent) if isinstance(s, NetSide)}
    out = MatchOutcome()
    started = time.perf_counter()
    table = [
        _Game(config, g, seed * 1_000_003 + g * 101, candidate, opponent, settings) for g in games
    ]
    queue = list(range(len(table)))
    waiting: dict[int, tuple[str, Leaves]] = {}
    answers: dict[int, list[Evaluation]] = {}
    while True:
        for gi, given in list(answers.items()):
            del answers[gi]
            _step(table, gi, given, waiting)
        while queue and len(waiting) < settings.parallel_games:
            _step(table, queue.pop(0), None, waiting)
        if not waiting:
            if queue:
                continue
            break
        for name, evaluator in evaluators.items():
            order = [gi for gi, (net, _) in waiting.items() if net == name]
            if not order:
                continue
            batch = [s for gi in order for s in waiting[gi][1]]
            t0 = time.perf_counter()
            evaluated = evaluator.evaluate(batch)
            out.timers.network_s += time.perf_counter() - t0
            out.timers.evaluations += len(batch)
            out.timers.batches += 1
            at = 0
            for gi in order:
                k = len(waiting.pop(gi)[1])
                answers[gi] = evaluated[at : at + k]
                at += k
    out.timers.total_s = time.perf_counter() - started
    out.games = [g.outcome() for g in table]
    return out


def _step(
    table: list[_Game],
    gi: int,
    given: list[Evaluation] | None,
    waiting: dict[int, tuple[str, Leaves]],
) -> None:
    request = table[gi].advance(given)
    if request is not None:
        waiting[gi] = request


__all__ = [
    "BASELINES",
    "FixedSide",
    "GameOutcome",
    "MatchOutcome",
    "MatchSettings",
    "MatchTimers",
    "NetSide",
    "Side",
    "baseline_side",
    "play_match_batched",
    "rank_score",
]

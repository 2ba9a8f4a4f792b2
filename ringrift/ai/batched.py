"""Many selfplay games at once, their network calls batched together.

Each game owns its tree and its random generators and runs its search as a generator
(``gumbel.gumbel_search``): whenever a search needs positions evaluated it pauses. The driver
advances every game until it pauses, evaluates all their positions in one network call, hands
each game its share and repeats, so the network sees batches of (games x leaves per wave)
positions instead of one game's handful. A game's moves depend only on its own seed and on the
evaluations it receives, so playing it in a batch gives the same game as playing it alone
(exactly, for an evaluator whose answer for a position does not depend on the rest of the
batch).

``Timers`` splits the wall time into the network (the evaluator's call), the engine (move
generation, move application and state copies inside the search) and the search itself (the
rest: tree bookkeeping, selection, backup), for ``ringrift bench selfplay``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ringrift.ai import gumbel
from ringrift.ai.gumbel import Evaluation, GumbelConfig, Leaves, SearchGen, SearchResult
from ringrift.ai.mcts import Evaluator
from ringrift.ai.selfplay import PlayedGame
from ringrift.game import GameConfig, GameRecord, GameState, Move, apply_move_unchecked, legal_moves


@dataclass(frozen=True)
class BatchedSettings:
    """Everything that decides how a selfplay game is played (recorded with every game)."""

    search: GumbelConfig = GumbelConfig()
    parallel_games: int = 64  # games in flight at once, their evaluations batched together
    sample_moves: int = 30  # decisions that sample (Gumbel noise on); later ones are greedy
    exploration: float = 1.0  # scale of the Gumbel noise while sampling; raise to explore more
    max_moves: int | None = None  # stop games early (tests); None: the rules' move cap

    def __post_init__(self) -> None:
        if self.parallel_games < 1:
            raise ValueError(f"parallel_games must be at least 1, got {self.parallel_games}")
        if self.sample_moves < 0 or self.exploration < 0:
            raise ValueError("sample_moves and exploration must be non-negative")

    def to_dict(self) -> dict[str, object]:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class Timers:
    """Where selfplay's time goes. ``network_s`` is time the network was computing (in its own
    thread when overlapped); ``encode_s`` turning positions into inputs and outputs into
    priors; ``engine_s`` the rules engine inside searches; ``wait_s`` this thread waiting for
    the network; ``search_s`` the rest of this thread's time (trees, selection, backup)."""

    network_s: float = 0.0
    engine_s: float = 0.0
    encode_s: float = 0.0
    wait_s: float = 0.0
    total_s: float = 0.0
    evaluations: int = 0
    batches: int = 0
    positions: int = 0  # searched decisions
    moves: int = 0  # moves played, forced ones included

    @property
    def search_s(self) -> float:
        blocked = self.wait_s if self.wait_s or self.encode_s else self.network_s
        return max(0.0, self.total_s - blocked - self.engine_s - self.encode_s)

    @property
    def mean_batch(self) -> float:
        return self.evaluations / self.batches if self.batches else 0.0


@dataclass
class Target:
    move_index: int  # index of the searched move in the game's record
    policy: list[tuple[int, float]]  # the improved policy (action index, probability)
    root_value: list[float]  # the network's value of the position, per seat
    simulations: int


@dataclass
class BatchedGame:
    id: str
    seed: int
    state: GameState
    record: GameRecord
    rng: np.random.Generator
    targets: list[Target] = field(default_factory=list)
    decisions: int = 0
    search: SearchGen | None = None

    @property
    def finished(self) -> bool:
        return self.state.is_over

    def advance(
        self, settings: BatchedSettings, limit: int, evaluations: list[Evaluation] | None
    ) -> Leaves | None:
        """Feed ``evaluations`` to the running search (if any) and play on until the game needs
        positions evaluated (returned) or ends (None)."""
        if self.search is not None:
            assert evaluations is not None
            try:
                return self.search.send(evaluations)
            except StopIteration as done:
                self._play_searched(done.value)
        while not self.state.is_over and self.state.move_count < limit:
            moves = legal_moves(self.state)
            if len(moves) == 1:
                self._play(moves[0])
                continue
            sampling = self.decisions < settings.sample_moves
            scale = settings.exploration if sampling else 0.0
            self.search = gumbel.gumbel_search(
                self.state, settings.search, self.rng, gumbel_scale=scale, moves=moves
            )
            return next(self.search)
        return None

    def _play_searched(self, result: SearchResult) -> None:
        self.search = None
        self.targets.append(
            Target(
                len(self.record.moves),
                result.policy,
                [round(float(v), 6) for v in result.root_value]
                if result.root_value is not None
                else [],
                result.simulations,
            )
        )
        self.decisions += 1
        self._play(result.move)

    def _play(self, move: Move) -> None:
        self.record.add(self.state, move)
        apply_move_unchecked(self.state, move)


class _Group:
    """Games in flight that share one network call: their pending requests and answers."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active: dict[int, Leaves] = {}  # game -> positions it waits on
        self.answers: dict[int, list[Evaluation]] = {}
        self.order: list[int] = []  # the games of the batch in flight, in batch order

    def step(
        self, games: list[BatchedGame], queue: list[int], settings: BatchedSettings, limit: int
    ) -> Leaves:
        """Hand every game its answers, start queued games while there is room, and return
        the positions the group's games now wait on, as one batch."""
        for gi in list(self.answers):
            request = games[gi].advance(settings, limit, self.answers.pop(gi))
            if request is None:
                del self.active[gi]
            else:
                self.active[gi] = request
        while queue and len(self.active) < self.capacity:
            gi = queue.pop(0)
            request = games[gi].advance(settings, limit, None)
            if request is not None:
                self.active[gi] = request
        self.order = list(self.active)
        return Leaves(
            [s for gi in self.order for s in self.active[gi]],
            [m for gi in self.order for m in self.active[gi].moves],
        )

    def distribute(self, evaluated: list[Evaluation]) -> None:
        at = 0
        for gi in self.order:
            n = len(self.active[gi])
            self.answers[gi] = evaluated[at : at + n]
            at += n


def play_batched(
    config: GameConfig,
    evaluator: Evaluator,
    settings: BatchedSettings,
    seeds: Sequence[int],
    ids: Sequence[str],
    timers: Timers | None = None,
    *,
    overlap: bool | None = None,
) -> list[BatchedGame]:
    """Play one game per seed, ``settings.parallel_games`` at a time; games in input order.

    With ``overlap`` (the default when the evaluator can split its work, as ``NetEvaluator``
    does, and at least two games run at once) the games form two halves: while the network
    evaluates one half's batch in a second thread, this thread advances the other half's
    searches and encodes its batch, so neither the network nor the search waits for the other
    more than it must. Per-game results do not depend on it.
    """
    if len(seeds) != len(ids):
        raise ValueError(f"{len(seeds)} seeds for {len(ids)} game ids")
    timers = timers if timers is not None else Timers()
    limit = settings.max_moves or config.max_moves
    splits = all(hasattr(evaluator, f) for f in ("prepare", "forward", "finish"))
    if overlap is None:
        overlap = splits and settings.parallel_games >= 2
    if overlap and not splits:
        raise ValueError(f"{type(evaluator).__name__} cannot overlap: no prepare/forward/finish")
    started = time.perf_counter()
    engine_before = gumbel.ENGINE_TIMER.seconds
    games = [
        BatchedGame(
            i,
            s,
            GameState.initial(config),
            GameRecord(config.name, s),
            np.random.default_rng([s, 0x6A3B]),
        )
        for s, i in zip(seeds, ids, strict=True)
    ]
    queue = list(range(len(games)))
    if overlap:
        half = (settings.parallel_games + 1) // 2
        _run_overlapped(
            evaluator, [_Group(half), _Group(half)], games, queue, settings, limit, timers
        )
    else:
        group = _Group(settings.parallel_games)
        while True:
            batch = group.step(games, queue, settings, limit)
            if not batch:
                if not queue:
                    break
                continue
            t0 = time.perf_counter()
            group.distribute(evaluator.evaluate(batch))
            timers.network_s += time.perf_counter() - t0
            timers.evaluations += len(batch)
            timers.batches += 1
    timers.total_s += time.perf_counter() - started
    timers.engine_s += gumbel.ENGINE_TIMER.seconds - engine_before
    timers.positions += sum(len(g.targets) for g in games)
    timers.moves += sum(g.state.move_count for g in games)
    return games


@contextlib.contextmanager
def _switch_interval(seconds: float) -> Iterator[None]:
    """Hand the interpreter between threads at least every ``seconds`` while in the block."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _run_overlapped(
    evaluator: Any,
    groups: list[_Group],
    games: list[BatchedGame],
    queue: list[int],
    settings: BatchedSettings,
    limit: int,
    timers: Timers,
) -> None:
    """Alternate the groups: prepare one group's batch while the other's is on the network.

    The network thread needs the interpreter briefly between its calls into torch; it gets it
    within half a millisecond rather than the default five.
    """

    def forward(prepared: Any) -> tuple[Any, float]:
        t0 = time.perf_counter()
        raw = evaluator.forward(prepared)
        return raw, time.perf_counter() - t0

    inflight: tuple[_Group, Any, Future[tuple[Any, float]]] | None = None
    with (
        _switch_interval(0.0005),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="network") as pool,
    ):
        while True:
            submitted = False
            for group in groups:
                batch = group.step(games, queue, settings, limit)
                prepared = None
                if batch:
                    t0 = time.perf_counter()
                    prepared = evaluator.prepare(batch)
                    timers.encode_s += time.perf_counter() - t0
                if inflight is not None:
                    other, other_prepared, future = inflight
                    t0 = time.perf_counter()
                    raw, busy = future.result()
                    timers.wait_s += time.perf_counter() - t0
                    timers.network_s += busy
                    t0 = time.perf_counter()
                    other.distribute(evaluator.finish(other_prepared, raw))
                    timers.encode_s += time.perf_counter() - t0
                    inflight = None
                if prepared is not None:
                    inflight = (group, prepared, pool.submit(forward, prepared))
                    timers.evaluations += len(batch)
                    timers.batches += 1
                    submitted = True
            idle = not submitted and inflight is None and not queue
            if idle and not any(g.active or g.answers for g in groups):
                return


def play_alone(
    config: GameConfig, evaluator: Evaluator, settings: BatchedSettings, seed: int, game_id: str
) -> BatchedGame:
    """One game with nothing batched alongside it (the reference for ``play_batched``)."""
    one = dataclasses.replace(settings, parallel_games=1)
    return play_batched(config, evaluator, one, [seed], [game_id])[0]


def to_played(
    game: BatchedGame, config: GameConfig, settings: BatchedSettings, model_id: str | None
) -> PlayedGame:
    """A finished (or move-capped) batched game as a shard game, with its search record."""
    state = game.state
    return PlayedGame(
        id=game.id,
        config=config.name,
        seed=game.seed,
        record=game.record,
        winner=state.winner,
        ranks=list(state.ranks) if state.ranks else [],
        termination=state.victory.value if state.victory else "unfinished",
        length=state.move_count,
        targets=[(t.move_index, t.policy) for t in game.targets],
        search={
            "algorithm": "gumbel",
            "model_id": model_id,
            "settings": settings.to_dict(),
            "root_values": [t.root_value for t in game.targets],
            "simulations": [t.simulations for t in game.targets],
        },
    )


__all__ = [
    "BatchedGame",
    "BatchedSettings",
    "Target",
    "Timers",
    "play_alone",
    "play_batched",
    "to_played",
]

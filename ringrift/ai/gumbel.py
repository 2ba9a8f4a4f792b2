"""Gumbel AlphaZero search at the root, PUCT below, written as a generator so that many games'
searches can share one batched network call.

``gumbel_search(state, config, rng)`` is a generator: it yields a list of positions whose
network evaluation it needs, is sent back one ``(priors, values)`` pair per position (what
``Evaluator.evaluate`` returns), and finally returns a ``SearchResult``. ``run_search`` drives
one search with an evaluator; ``ringrift.ai.batched`` drives many at once.

The root (Danihelka et al., "Policy improvement by planning with Gumbel", ICLR 2022):

1. Sample a Gumbel variable ``g(a)`` per legal move (scaled by ``gumbel_scale``; 0 when the
   move is to be played greedily) and keep the ``considered`` moves with the largest
   ``g(a) + logits(a)``.
2. Sequential halving: the simulation budget is split over ``ceil(log2(considered))`` phases;
   in each phase every remaining move gets the same number of simulations, then the better half
   by ``g + logits + sigma(q)`` stays. A wave of simulations visits each remaining move once, so
   the leaves of a wave lie in different subtrees and are evaluated together.
3. The move played is the remaining move with the largest ``g + logits + sigma(q)``; the policy
   target is ``softmax(logits + sigma(completed q))`` over all legal moves, where a move never
   visited takes the mixed value ``v_mix`` of the root's value estimate and its visited
   children. ``sigma(q) = (c_visit + max visits) * c_scale * q`` with ``q`` rescaled to [0, 1].

Below the root every node picks by PUCT for the player to move there; values are vectors, one
entry per seat, so 3-4 players each maximise their own. A position with one legal move costs no
simulation: the root returns at once, and single-move positions inside the tree are stepped
through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ringrift.game import GameState, Move, apply_move_unchecked, legal_moves
from ringrift.game.actions import action_space

Evaluation = tuple[np.ndarray, np.ndarray]  # (priors over legal moves, value per seat)
SearchGen = Generator["Leaves", list[Evaluation], "SearchResult"]


@dataclass
class EngineTimer:
    """Seconds spent in the rules engine by searches in this process (move generation, move
    application, state copies): what ``ringrift bench selfplay`` reports as the engine share."""

    seconds: float = 0.0


ENGINE_TIMER = EngineTimer()


@dataclass(frozen=True)
class GumbelConfig:
    simulations: int = 64  # the root's budget
    considered: int = 16  # moves sampled at the root (m in the paper)
    c_puct: float = 1.25  # exploration below the root
    c_visit: float = 50.0  # sigma's offset (mctx's maxvisit_init)
    c_scale: float = 0.1  # sigma's scale (mctx's value_scale)

    def __post_init__(self) -> None:
        if self.simulations < 1 or self.considered < 1:
            raise ValueError("GumbelConfig needs simulations >= 1 and considered >= 1")
        if self.c_puct <= 0 or self.c_visit < 0 or self.c_scale <= 0:
            raise ValueError("GumbelConfig constants must be positive")


@dataclass(frozen=True)
class SearchResult:
    move: Move
    policy: list[tuple[int, float]]  # improved policy as sparse (action index, probability)
    root_value: np.ndarray | None  # the network's value of the root per seat; None if forced
    simulations: int  # simulations spent (0 for a forced move)


@dataclass
class Node:
    state: GameState
    moves: list[Move] = field(default_factory=list)
    priors: np.ndarray = field(default_factory=lambda: np.zeros(0))
    value: np.ndarray = field(default_factory=lambda: np.zeros(0))  # network value per seat
    visits: np.ndarray = field(default_factory=lambda: np.zeros(0))
    value_sum: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    children: dict[int, Node] = field(default_factory=dict)
    expanded: bool = False

    def expand(self, evaluation: Evaluation) -> None:
        """Take the network's answer; ``moves`` must already be the legal moves (set when the
        node was made, so each position's moves are generated once)."""
        priors, value = evaluation
        self.priors = np.asarray(priors, dtype=np.float64)
        if self.priors.shape != (len(self.moves),):
            raise ValueError(
                f"evaluator gave {self.priors.shape} priors for {len(self.moves)} legal moves"
            )
        self.value = np.asarray(value, dtype=np.float64)
        self.visits = np.zeros(len(self.moves))
        self.value_sum = np.zeros((len(self.moves), self.state.num_players))
        self.expanded = True


def terminal_values(state: GameState) -> np.ndarray:
    """Final ranks as values: first place +1, last place -1, linear between, ties shared."""
    n = state.num_players
    ranks = state.ranks or tuple([1] * n)
    if n == 1:
        return np.ones(1)
    return np.array([1.0 - 2.0 * (r - 1) / (n - 1) for r in ranks])


def advance_forced(state: GameState) -> GameState:
    """Apply moves while exactly one is legal; returns the same object, mutated."""
    forced_then_moves(state)
    return state


def forced_then_moves(state: GameState) -> list[Move]:
    """Apply moves to ``state`` while exactly one is legal; then its legal moves (none when the
    game is over)."""
    while not state.is_over:
        moves = legal_moves(state)
        if len(moves) != 1:
            return moves
        apply_move_unchecked(state, moves[0])
    return []


class Leaves(list[GameState]):
    """Positions a search wants evaluated, with the legal moves of each (``moves``), so an
    evaluator that needs them does not generate them again."""

    def __init__(self, states: list[GameState], moves: list[list[Move]]) -> None:
        super().__init__(states)
        self.moves = moves


def _child(node: Node, i: int) -> Node:
    child = node.children.get(i)
    if child is None:
        t0 = time.perf_counter()
        state = node.state.copy()
        apply_move_unchecked(state, node.moves[i])
        child = Node(state, moves=forced_then_moves(state))
        ENGINE_TIMER.seconds += time.perf_counter() - t0
        node.children[i] = child
    return child


def _puct(node: Node, c_puct: float) -> int:
    p = node.state.current - 1
    n = node.visits
    q = np.where(n > 0, node.value_sum[:, p] / np.maximum(n, 1), 0.0)
    u = c_puct * node.priors * math.sqrt(n.sum() + 1) / (1 + n)
    return int(np.argmax(q + u))


def _descend(node: Node, c_puct: float) -> tuple[list[tuple[Node, int]], Node]:
    """From ``node`` (expanded) down to an unexpanded or finished node, by PUCT."""
    path: list[tuple[Node, int]] = []
    while node.expanded and not node.state.is_over:
        i = _puct(node, c_puct)
        path.append((node, i))
        node = _child(node, i)
    return path, node


def _backup(path: list[tuple[Node, int]], value: np.ndarray) -> None:
    for node, i in path:
        node.visits[i] += 1
        node.value_sum[i] += value


def _sigma(q: np.ndarray, visits: np.ndarray, config: GumbelConfig) -> np.ndarray:
    return (config.c_visit + float(visits.max(initial=0.0))) * config.c_scale * q


def completed_q(root: Node) -> np.ndarray:
    """Per root move, its mean value for the player to move, rescaled to [0, 1]; a move never
    visited takes ``v_mix``, the root value mixed with the prior-weighted visited values."""
    p = root.state.current - 1
    n = root.visits
    visited = n > 0
    q = np.where(visited, root.value_sum[:, p] / np.maximum(n, 1), 0.0)
    v = float(root.value[p])
    total = float(n.sum())
    if total > 0:
        weight = float(root.priors[visited].sum())
        mixed = float((root.priors[visited] * q[visited]).sum()) / max(weight, 1e-12)
        v_mix = (v + total * mixed) / (1.0 + total)
    else:
        v_mix = v
    completed = np.where(visited, q, v_mix)
    lo, hi = float(completed.min()), float(completed.max())
    if hi - lo < 1e-12:
        return np.full_like(completed, 0.5)
    return (completed - lo) / (hi - lo)


def improved_policy(root: Node, config: GumbelConfig) -> np.ndarray:
    """``softmax(logits + sigma(completed q))`` over the root's legal moves."""
    logits = np.log(np.maximum(root.priors, 1e-30))
    scores = logits + _sigma(completed_q(root), root.visits, config)
    scores -= scores.max()
    e = np.exp(scores)
    return e / e.sum()


def _phase_visits(budget: int, considered: int) -> list[int]:
    """Simulations per remaining move in each sequential-halving phase (at least 1 each)."""
    phases = max(1, math.ceil(math.log2(considered))) if considered > 1 else 1
    plan = []
    remaining = considered
    for _ in range(phases):
        plan.append(max(1, budget // (phases * remaining)))
        remaining = max(1, math.ceil(remaining / 2))
    return plan


def as_action_policy(
    state: GameState, moves: Sequence[Move], probs: np.ndarray
) -> list[tuple[int, float]]:
    """Move probabilities as sparse (action index, probability); moves sharing an index add up."""
    space = action_space(state.geo.board)
    acc: dict[int, float] = {}
    for move, p in zip(moves, probs, strict=True):
        if p > 0:
            a = space.encode(move)
            acc[a] = acc.get(a, 0.0) + float(p)
    return sorted(acc.items())


def gumbel_search(
    root_state: GameState,
    config: GumbelConfig,
    rng: np.random.Generator,
    *,
    gumbel_scale: float = 1.0,
    moves: list[Move] | None = None,
) -> SearchGen:
    """Search ``root_state`` (not modified); see the module doc. ``gumbel_scale`` 0 plays the
    best move by the search's own measure; 1 samples as the paper does. ``moves``, when the
    caller has them, are ``legal_moves(root_state)``."""
    root = Node(root_state.copy())
    moves = root.moves = list(moves) if moves is not None else legal_moves(root.state)
    if not moves:
        raise ValueError("gumbel_search needs a position with a legal move")
    if len(moves) == 1:  # nothing to choose: no evaluation, no simulation
        return SearchResult(moves[0], as_action_policy(root.state, moves, np.ones(1)), None, 0)
    (evaluation,) = yield Leaves([root.state], [moves])
    root.expand(evaluation)
    k = len(root.moves)
    logits = np.log(np.maximum(root.priors, 1e-30))
    g = rng.gumbel(size=k) * gumbel_scale if gumbel_scale > 0 else np.zeros(k)
    m = min(config.considered, k)
    remaining = list(np.argsort(-(g + logits), kind="stable")[:m])
    spent = 0

    def scores() -> np.ndarray:
        """``g + logits + sigma(completed q)``: the same values the policy target uses."""
        return g + logits + _sigma(completed_q(root), root.visits, config)

    for per_move in _phase_visits(config.simulations, m):
        for _ in range(per_move):
            if spent >= config.simulations:
                break
            leaves: list[tuple[list[tuple[Node, int]], Node]] = []
            for i in remaining:
                if spent >= config.simulations:
                    break
                spent += 1
                child = _child(root, int(i))
                path, leaf = _descend(child, config.c_puct)
                path = [(root, int(i)), *path]
                if leaf.state.is_over:
                    _backup(path, terminal_values(leaf.state))
                else:
                    leaves.append((path, leaf))
            if leaves:
                evaluations = yield Leaves(
                    [leaf.state for _, leaf in leaves], [leaf.moves for _, leaf in leaves]
                )
                for (path, leaf), ev in zip(leaves, evaluations, strict=True):
                    leaf.expand(ev)
                    _backup(path, leaf.value)
        if len(remaining) > 1:
            ranked = scores()
            remaining.sort(key=lambda i: -ranked[int(i)])
            remaining = remaining[: max(1, math.ceil(len(remaining) / 2))]
    ranked = scores()
    best = max(remaining, key=lambda i: ranked[int(i)])
    policy = improved_policy(root, config)
    return SearchResult(
        root.moves[int(best)], as_action_policy(root.state, root.moves, policy), root.value, spent
    )


def run_search(search: SearchGen, evaluator: object) -> SearchResult:
    """Drive one search with ``evaluator`` (an ``mcts.Evaluator``) until it returns."""
    evaluate = evaluator.evaluate  # type: ignore[attr-defined]
    try:
        request = next(search)
        while True:
            request = search.send(evaluate(request))
    except StopIteration as done:
        result: SearchResult = done.value
        return result

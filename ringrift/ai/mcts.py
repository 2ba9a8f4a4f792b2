"""PUCT Monte Carlo tree search for 2-4 players, with batched leaf evaluation.

Each node keeps, per child edge, a visit count, a prior and a value sum that is a vector with
one entry per seat; a node picks the child that is best for the player to move there (the
"max^n" generalisation of AlphaZero's search to more than two players). Values are in [-1, 1]
per seat, in seat order 1..n. Positions with a single legal move (bookkeeping moves, forced
eliminations with one stack) are stepped through without spending a simulation on them.

An ``Evaluator`` turns a batch of positions into (priors over legal moves, value per seat);
``UniformEvaluator`` is generation 0: uniform priors and a neutral value.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ringrift.ai.gumbel import advance_forced, terminal_values
from ringrift.game import GameState, Move, apply_move_unchecked, legal_moves
from ringrift.game.actions import action_space


class Evaluator(Protocol):
    def evaluate(self, states: Sequence[GameState]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per state: priors over ``legal_moves(state)`` (same order, summing to 1) and a
        value per seat (length ``num_players``, seat order 1..n)."""
        ...


class UniformEvaluator:
    """Generation 0: every legal move equally likely, every position even."""

    def evaluate(self, states: Sequence[GameState]) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for s in states:
            k = len(legal_moves(s))
            out.append((np.full(k, 1.0 / k), np.zeros(s.num_players)))
        return out


@dataclass
class Node:
    state: GameState
    moves: list[Move] = field(default_factory=list)
    priors: np.ndarray = field(default_factory=lambda: np.zeros(0))
    visits: np.ndarray = field(default_factory=lambda: np.zeros(0))
    value_sum: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    children: dict[int, Node] = field(default_factory=dict)
    expanded: bool = False

    @property
    def total_visits(self) -> int:
        return int(self.visits.sum())


@dataclass(frozen=True)
class SearchConfig:
    simulations: int = 32
    c_puct: float = 1.5
    batch_size: int = 8  # leaves evaluated together
    dirichlet_alpha: float = 0.3
    dirichlet_fraction: float = 0.25  # root noise share in selfplay; 0 disables


class MCTS:
    def __init__(self, evaluator: Evaluator, config: SearchConfig, rng: random.Random) -> None:
        self.evaluator = evaluator
        self.config = config
        self.rng = rng
        self.np_rng = np.random.default_rng(rng.getrandbits(63))

    def _expand(self, nodes: list[Node]) -> list[np.ndarray]:
        results = self.evaluator.evaluate([n.state for n in nodes])
        values = []
        for node, (priors, value) in zip(nodes, results, strict=True):
            node.moves = legal_moves(node.state)
            node.priors = np.asarray(priors, dtype=np.float64)
            k = len(node.moves)
            node.visits = np.zeros(k)
            node.value_sum = np.zeros((k, node.state.num_players))
            node.expanded = True
            values.append(np.asarray(value, dtype=np.float64))
        return values

    def _select_child(self, node: Node) -> int:
        p = node.state.current - 1
        n = node.visits
        q = np.where(n > 0, node.value_sum[:, p] / np.maximum(n, 1), 0.0)
        u = self.config.c_puct * node.priors * math.sqrt(node.total_visits + 1) / (1 + n)
        return int(np.argmax(q + u))

    def search(self, root_state: GameState, *, add_noise: bool = True) -> Node:
        """Run the configured number of simulations from ``root_state`` (not modified)."""
        root = Node(root_state.copy())
        self._expand([root])
        if add_noise and self.config.dirichlet_fraction > 0 and len(root.moves) > 1:
            noise = self.np_rng.dirichlet([self.config.dirichlet_alpha] * len(root.moves))
            f = self.config.dirichlet_fraction
            root.priors = (1 - f) * root.priors + f * noise
        done = 0
        while done < self.config.simulations:
            batch: list[tuple[list[tuple[Node, int]], Node]] = []
            pending: set[int] = set()
            for _ in range(min(self.config.batch_size, self.config.simulations - done)):
                path, leaf = self._descend(root)
                done += 1
                if leaf.state.is_over:
                    self._backup(path, terminal_values(leaf.state))
                elif id(leaf) in pending:
                    self._backup(path, np.zeros(leaf.state.num_players))  # collided: neutral
                else:
                    pending.add(id(leaf))
                    batch.append((path, leaf))
            if batch:
                values = self._expand([leaf for _, leaf in batch])
                for (path, _), value in zip(batch, values, strict=True):
                    self._backup(path, value)
        return root

    def _descend(self, root: Node) -> tuple[list[tuple[Node, int]], Node]:
        node = root
        path: list[tuple[Node, int]] = []
        while node.expanded and not node.state.is_over:
            i = self._select_child(node)
            path.append((node, i))
            child = node.children.get(i)
            if child is None:
                state = node.state.copy()
                apply_move_unchecked(state, node.moves[i])
                child = Node(advance_forced(state))
                node.children[i] = child
            node = child
        return path, node

    @staticmethod
    def _backup(path: list[tuple[Node, int]], value: np.ndarray) -> None:
        for node, i in path:
            node.visits[i] += 1
            node.value_sum[i] += value


def visit_policy(root: Node) -> list[tuple[int, float]]:
    """The root's visit distribution as sparse (action index, probability) pairs.

    Moves that share an action index (recovery extraction choices) add up.
    """
    space = action_space(root.state.geo.board)
    total = root.visits.sum()
    if total <= 0:
        return []
    acc: dict[int, float] = {}
    for move, n in zip(root.moves, root.visits, strict=True):
        if n > 0:
            a = space.encode(move)
            acc[a] = acc.get(a, 0.0) + float(n / total)
    return sorted(acc.items())


def choose_move(root: Node, temperature: float, rng: random.Random) -> Move:
    """Sample by visits^(1/T); T == 0 takes the most visited move (first on ties)."""
    visits = root.visits
    if temperature <= 0:
        return root.moves[int(np.argmax(visits))]
    weights = visits ** (1.0 / temperature)
    if weights.sum() <= 0:
        return rng.choice(root.moves)
    return rng.choices(root.moves, weights=list(weights))[0]

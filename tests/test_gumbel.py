"""Gumbel root search: legal answers, forced positions, finding (and avoiding) a marked move for
the player to move in 2-4 player games, reproducibility, the sequential-halving budget, and the
completed-Q / improved-policy arithmetic.

Evaluators here are real classes whose answers are pure functions of the position, so a search's
result cannot depend on what else is in a batch.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from ringrift.ai.gumbel import (
    GumbelConfig,
    Node,
    SearchResult,
    _phase_visits,
    advance_forced,
    completed_q,
    gumbel_search,
    improved_policy,
    run_search,
)
from ringrift.ai.mcts import Evaluator, UniformEvaluator
from ringrift.game import (
    GameConfig,
    GameState,
    Move,
    apply_move_unchecked,
    fingerprint,
    legal_moves,
    move_to_str,
)
from ringrift.game.actions import action_space

Evaluation = tuple[np.ndarray, np.ndarray]


def _unit(text: str) -> float:
    """A deterministic number in [0, 1) from ``text``."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64


class HashEvaluator:
    """A deterministic stand-in for a network: priors (logits in [-1.5, 1.5]) and values per seat
    (in [-1, 1]) hashed from the position's fingerprint and the move notation."""

    def evaluate(self, states: Sequence[GameState]) -> list[Evaluation]:
        out = []
        for s in states:
            fp = fingerprint(s)
            logits = np.array(
                [3.0 * _unit(f"{fp}|{move_to_str(s.geo, m)}") - 1.5 for m in legal_moves(s)]
            )
            priors = np.exp(logits - logits.max())
            priors /= priors.sum()
            value = np.array([2.0 * _unit(f"{fp}|v{p}") - 1.0 for p in range(s.num_players)])
            out.append((priors, value))
        return out


class CountingEvaluator:
    """Wraps an evaluator and remembers the size of every batch it was asked for."""

    def __init__(self, inner: Evaluator) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def evaluate(self, states: Sequence[GameState]) -> list[Evaluation]:
        self.batches.append(len(states))
        return self.inner.evaluate(states)


class MarkedEvaluator:
    """Uniform priors and value 0 for every seat, except the one position whose fingerprint is
    ``key``, which gets ``value``; ``hits`` counts how often that position was evaluated."""

    def __init__(self, key: str, value: Sequence[float]) -> None:
        self.key = key
        self.value = np.asarray(value, dtype=np.float64)
        self.hits = 0

    def evaluate(self, states: Sequence[GameState]) -> list[Evaluation]:
        out = []
        for s in states:
            k = len(legal_moves(s))
            if fingerprint(s) == self.key:
                self.hits += 1
                value = self.value.copy()
            else:
                value = np.zeros(s.num_players)
            out.append((np.full(k, 1.0 / k), value))
        return out


# ----- positions -----------------------------------------------------------------------------


def _play_to(config: str, seed: int, depth: int) -> GameState | None:
    """A seeded random game's position after ``depth`` moves, stepped on to the next real
    choice; None if the game ended first."""
    rng = random.Random(seed)
    state = GameState.initial(GameConfig.parse(config))
    while not state.is_over and state.move_count < depth:
        apply_move_unchecked(state, rng.choice(legal_moves(state)))
    advance_forced(state)
    return None if state.is_over else state


def _find(config: str, seed: int, accept: Callable[[GameState], bool]) -> GameState:
    """The first position of a seeded random game that ``accept`` takes."""
    rng = random.Random(seed)
    state = GameState.initial(GameConfig.parse(config))
    while not state.is_over:
        if accept(state):
            return state
        apply_move_unchecked(state, rng.choice(legal_moves(state)))
    raise AssertionError(f"no accepted position in {config} seed {seed}")


def _after(state: GameState, move: Move) -> GameState:
    """The position the search reaches by ``move``: the move, then every forced continuation."""
    child = state.copy()
    apply_move_unchecked(child, move)
    return advance_forced(child)


def _policy_checks(state: GameState, config: GumbelConfig, result: SearchResult) -> None:
    moves = legal_moves(state)
    assert result.move in moves
    space = action_space(state.geo.board)
    legal_actions = {space.encode(m) for m in moves}
    actions = [a for a, _ in result.policy]
    assert len(actions) == len(set(actions)), "an action listed twice"
    assert set(actions) <= legal_actions
    probs = np.array([p for _, p in result.policy])
    assert (probs >= 0).all()
    assert abs(probs.sum() - 1.0) < 1e-9
    assert 0 <= result.simulations <= config.simulations


# ----- 1. never illegal ----------------------------------------------------------------------

CONFIGS = ("square8_2p", "hex8_2p", "square8_3p", "square8_4p")
DEPTHS = (0, 7, 24, 55, 90)


@pytest.mark.parametrize("config_name", CONFIGS)
def test_search_answers_are_legal_distributions(config_name: str) -> None:
    searched = 0
    for i, depth in enumerate(DEPTHS):
        for seed in (depth, depth + 1000):
            state = _play_to(config_name, seed, depth)
            if state is None:
                continue
            before = (fingerprint(state), state.move_count, state.current)
            config = GumbelConfig(simulations=(12, 24, 40)[i % 3], considered=(4, 16)[seed % 2])
            result = run_search(
                gumbel_search(state, config, np.random.default_rng(seed)), HashEvaluator()
            )
            _policy_checks(state, config, result)
            assert (fingerprint(state), state.move_count, state.current) == before, "root moved"
            assert result.root_value is not None
            assert result.root_value.shape == (state.num_players,)
            # The root value is the evaluator's, in seat order.
            ((_, root_value),) = HashEvaluator().evaluate([state])
            assert np.array_equal(result.root_value, root_value)
            # Priors are bounded away from 0, so every legal action keeps some probability.
            space = action_space(state.geo.board)
            assert {a for a, _ in result.policy} == {space.encode(m) for m in legal_moves(state)}
            searched += 1
    assert searched >= 7, f"only {searched} positions searched"


# ----- 2. one legal move ---------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ["square8_2p", "hex8_2p", "square8_3p"])
def test_single_legal_move_is_played_without_search(config_name: str) -> None:
    state = _find(config_name, 3, lambda s: s.move_count > 0 and len(legal_moves(s)) == 1)
    (only,) = legal_moves(state)
    gen = gumbel_search(state, GumbelConfig(simulations=16), np.random.default_rng(0))
    with pytest.raises(StopIteration) as stop:
        next(gen)
    result: SearchResult = stop.value.value
    assert result.move == only
    assert result.simulations == 0
    assert result.root_value is None
    assert result.policy == [(action_space(state.geo.board).encode(only), 1.0)]


def test_no_legal_move_is_refused() -> None:
    rng = random.Random(0)
    state = GameState.initial(GameConfig.parse("square8_2p"))
    while not state.is_over:
        apply_move_unchecked(state, rng.choice(legal_moves(state)))
    with pytest.raises(ValueError):
        next(gumbel_search(state, GumbelConfig(), np.random.default_rng(0)))


# ----- 3. a marked move is found, or avoided, for the player to move ---------------------------


def _marked_move(state: GameState) -> Move:
    """A late root move (so ties broken by order would not pick it) whose position and action
    index no other root move shares, and that does not end the game."""
    moves = legal_moves(state)
    space = action_space(state.geo.board)
    keys = [fingerprint(_after(state, m)) for m in moves]
    actions = [space.encode(m) for m in moves]
    for i in range(len(moves) - 1, 0, -1):
        unique = keys.count(keys[i]) == 1 and actions.count(actions[i]) == 1
        if unique and not _after(state, moves[i]).is_over:
            return moves[i]
    raise AssertionError("no markable move")


def _search_marked(state: GameState, value: Sequence[float]) -> tuple[Move, SearchResult]:
    move = _marked_move(state)
    k = len(legal_moves(state))
    phases = math.ceil(math.log2(k))
    config = GumbelConfig(simulations=2 * k * phases, considered=k)
    evaluator = MarkedEvaluator(fingerprint(_after(state, move)), value)
    result = run_search(
        gumbel_search(state, config, np.random.default_rng(0), gumbel_scale=0.0), evaluator
    )
    assert evaluator.hits == 1, "the marked position should be evaluated exactly once"
    _policy_checks(state, config, result)
    return move, result


def _choice(lo: int, hi: int, player: int | None = None) -> Callable[[GameState], bool]:
    def accept(s: GameState) -> bool:
        if s.move_count < 12 or not lo <= len(legal_moves(s)) <= hi:
            return False
        return player is None or s.current == player

    return accept


# (config, seed, player to move at the root): 3-4 player roots where seat 1 is not to move, so
# reading the wrong seat's value cannot pass.
MARKED_ROOTS = [("square8_2p", 5, None), ("square8_3p", 2, 2), ("square8_4p", 4, 3)]


@pytest.mark.parametrize(("config_name", "seed", "player"), MARKED_ROOTS)
def test_search_finds_the_move_that_wins_for_the_player_to_move(
    config_name: str, seed: int, player: int | None
) -> None:
    state = _find(config_name, seed, _choice(4, 40, player))
    n, me = state.num_players, state.current
    value = [-1.0] * n
    value[me - 1] = 1.0
    move, result = _search_marked(state, value)
    assert result.move == move
    probs = dict(result.policy)
    marked = probs[action_space(state.geo.board).encode(move)]
    assert marked == max(probs.values())
    assert sorted(probs.values())[-2] < marked, "the marked move should be strictly favoured"


@pytest.mark.parametrize(("config_name", "seed", "player"), MARKED_ROOTS)
def test_search_avoids_the_move_that_wins_for_another_seat(
    config_name: str, seed: int, player: int | None
) -> None:
    state = _find(config_name, seed, _choice(4, 40, player))
    n, me = state.num_players, state.current
    other = 1 if me != 1 else 2
    value = [0.0] * n
    value[other - 1] = 1.0
    value[me - 1] = -1.0
    move, result = _search_marked(state, value)
    assert result.move != move
    probs = dict(result.policy)
    marked = probs.get(action_space(state.geo.board).encode(move), 0.0)
    others = [p for a, p in probs.items() if a != action_space(state.geo.board).encode(move)]
    assert marked < min(others), "the marked move should get the least probability"


# ----- 4. reproducible -----------------------------------------------------------------------


def _key(result: SearchResult) -> tuple[object, ...]:
    value = None if result.root_value is None else tuple(result.root_value.tolist())
    return (result.move, tuple(result.policy), value, result.simulations)


def test_same_seed_same_result_and_seeds_matter() -> None:
    state = _play_to("square8_2p", 11, 30)
    assert state is not None
    config = GumbelConfig(simulations=32, considered=8)

    def search(seed: int, scale: float = 1.0) -> SearchResult:
        gen = gumbel_search(state, config, np.random.default_rng(seed), gumbel_scale=scale)
        return run_search(gen, HashEvaluator())

    for seed in (0, 1):
        assert _key(search(seed)) == _key(search(seed))
    sampled = {_key(search(seed)) for seed in range(6)}
    assert len(sampled) > 1, "Gumbel noise should change the search with the seed"
    moves = {search(seed).move for seed in range(6)}
    assert len(moves) > 1, "Gumbel noise should change the move played with the seed"
    greedy = {_key(search(seed, 0.0)) for seed in range(3)}
    assert len(greedy) == 1, "without noise the seed must not matter"


# ----- 5. the sequential-halving budget --------------------------------------------------------


def _halving_spend(budget: int, considered: int) -> int:
    """What gumbel_search spends following ``_phase_visits``: per phase, ``per_move`` waves each
    visiting every remaining move once, stopping at the budget; the better half stays."""
    spent, remaining = 0, considered
    for per_move in _phase_visits(budget, considered):
        spent += min(per_move * remaining, budget - spent)
        remaining = max(1, math.ceil(remaining / 2))
    return spent


def test_phase_plan_stays_within_the_budget_and_uses_most_of_it() -> None:
    for considered in range(1, 33):
        phases = max(1, math.ceil(math.log2(considered)))
        for budget in range(1, 300):
            plan = _phase_visits(budget, considered)
            assert len(plan) == phases
            assert all(v >= 1 for v in plan)
            spent = _halving_spend(budget, considered)
            assert spent <= budget
            if budget <= considered:
                assert spent == budget  # the first phase alone uses it all
            if budget >= phases * considered:
                # Enough for every phase: the plan itself fits, with no cut-off needed.
                remaining, nominal = considered, 0
                for v in plan:
                    nominal += v * remaining
                    remaining = max(1, math.ceil(remaining / 2))
                assert nominal <= budget
                assert spent >= budget / 2, (budget, considered, spent)
    assert _phase_visits(64, 16) == [1, 2, 4, 8]
    assert _halving_spend(64, 16) >= 48


@pytest.mark.parametrize("budget", [8, 16, 50, 64, 100])
@pytest.mark.parametrize("considered", [4, 16])
def test_search_spends_what_the_plan_says(budget: int, considered: int) -> None:
    # The opening has 192 legal moves and no game ends within a few plies, so every simulation
    # is one leaf evaluation.
    state = GameState.initial(GameConfig.parse("square8_2p"))
    config = GumbelConfig(simulations=budget, considered=considered)
    counter = CountingEvaluator(UniformEvaluator())
    result = run_search(gumbel_search(state, config, np.random.default_rng(1)), counter)
    assert result.simulations == _halving_spend(budget, considered)
    assert result.simulations <= budget
    assert sum(counter.batches) == 1 + result.simulations
    assert counter.batches[0] == 1  # the root alone
    assert max(counter.batches) <= considered  # a wave: one leaf per remaining move
    if budget >= 64:
        assert result.simulations >= 3 * budget // 4
    if (budget, considered) == (64, 16):
        # Phases of 1, 2, 4 and 8 waves over 16, 8, 4 and 2 remaining moves.
        assert counter.batches == [1, 16, 8, 8, 4, 4, 4, 4] + [2] * 8
        assert result.simulations == 64


# ----- 6. completed Q and the improved policy ---------------------------------------------------


def _root(
    state: GameState, priors: np.ndarray, value: np.ndarray, visits: np.ndarray, sums: np.ndarray
) -> Node:
    return Node(
        state,
        moves=legal_moves(state),
        priors=priors,
        value=value,
        visits=visits,
        value_sum=sums,
        expanded=True,
    )


def test_completed_q_and_improved_policy_on_random_statistics() -> None:
    rng = np.random.default_rng(7)
    config = GumbelConfig()
    for name in ("square8_2p", "square8_3p", "square8_4p"):
        state = _play_to(name, 1, 20)
        assert state is not None
        k, n = len(legal_moves(state)), state.num_players
        for _ in range(25):
            priors = rng.dirichlet(np.ones(k))
            visits = rng.integers(0, 5, size=k).astype(np.float64)
            sums = rng.uniform(-1, 1, size=(k, n)) * visits[:, None]
            root = _root(state, priors, rng.uniform(-1, 1, size=n), visits, sums)
            q = completed_q(root)
            assert q.shape == (k,)
            assert (q >= 0).all() and (q <= 1).all()
            unvisited = q[visits == 0]
            assert np.allclose(unvisited, unvisited[:1]), "every unvisited move takes v_mix"
            pi = improved_policy(root, config)
            assert pi.shape == (k,)
            assert (pi >= 0).all()
            assert abs(pi.sum() - 1.0) < 1e-9


def test_no_visits_means_neutral_q_and_the_prior_policy() -> None:
    state = _play_to("square8_2p", 2, 20)
    assert state is not None
    k, n = len(legal_moves(state)), state.num_players
    priors = np.random.default_rng(0).dirichlet(np.ones(k))
    root = _root(state, priors, np.array([0.3, -0.3]), np.zeros(k), np.zeros((k, n)))
    assert np.allclose(completed_q(root), 0.5)
    assert np.allclose(improved_policy(root, GumbelConfig()), priors)


@pytest.mark.parametrize("config_name", ["square8_2p", "square8_3p"])
def test_the_better_visited_move_gets_the_most_improved_probability(config_name: str) -> None:
    state = _find(config_name, 1, _choice(6, 200, 2))  # seat 2 to move
    k, n = len(legal_moves(state)), state.num_players
    priors = np.full(k, 1.0 / k)
    visits = np.zeros(k)
    sums = np.zeros((k, n))
    visits[[1, 3, 4]] = [4, 4, 4]
    # Move 3 is the best for seat 2 (the player to move) and the worst for seat 1.
    sums[1] = [1.0, 0.4] + [0.0] * (n - 2)
    sums[3] = [-4.0, 2.8] + [0.0] * (n - 2)
    sums[4] = [4.0, -2.0] + [0.0] * (n - 2)
    root = _root(state, priors, np.zeros(n), visits, sums)
    q = completed_q(root)
    assert q[3] == 1.0 and q[4] == 0.0
    pi = improved_policy(root, GumbelConfig())
    assert int(np.argmax(pi)) == 3
    assert np.sort(pi)[-2] < pi[3]
    assert int(np.argmin(pi)) == 4


def test_unvisited_moves_take_the_mixed_value() -> None:
    state = _find("square8_3p", 4, _choice(6, 200, 3))  # seat 3 to move
    k = len(legal_moves(state))
    priors = np.random.default_rng(3).dirichlet(np.ones(k))
    visits = np.zeros(k)
    sums = np.zeros((k, 3))
    visits[[0, 2]] = [3, 1]
    sums[0] = [0.0, 0.0, 2.4]  # q 0.8 for seat 3
    sums[2] = [0.0, 0.0, 0.2]  # q 0.2
    root_value = np.array([0.9, 0.9, -0.6])
    root = _root(state, priors, root_value, visits, sums)
    # v_mix = (v + N * sum(p q) / sum(p)) / (1 + N) over the visited moves, for seat 3.
    mixed = (priors[0] * 0.8 + priors[2] * 0.2) / (priors[0] + priors[2])
    v_mix = (-0.6 + 4 * mixed) / 5
    lo, hi = min(v_mix, 0.2), 0.8
    q = completed_q(root)
    assert q[0] == pytest.approx(1.0)
    assert q[1] == pytest.approx((v_mix - lo) / (hi - lo))
    assert q[2] == pytest.approx((0.2 - lo) / (hi - lo))


@pytest.mark.parametrize("config_name", ["square8_2p", "square8_4p"])
def test_puct_below_the_root_picks_for_the_player_to_move_there(config_name: str) -> None:
    from ringrift.ai.gumbel import _puct

    state = _find(config_name, 6, _choice(6, 200, 2))  # seat 2 to move
    k, n = len(legal_moves(state)), state.num_players
    visits = np.full(k, 3.0)
    sums = np.zeros((k, n))
    sums[:, 0] = 1.5  # seat 1 likes everything but move 2
    sums[2] = [-3.0, 3.0] + [0.0] * (n - 2)  # the best for seat 2
    node = _root(state, np.full(k, 1.0 / k), np.zeros(n), visits, sums)
    assert _puct(node, 1.25) == 2


# ----- 7. the move played and the policy target agree -------------------------------------------


def test_sampled_moves_follow_the_improved_policy() -> None:
    # Player 1 wins at once by landing on the marker at 0,3 (tests/test_mcts.py); every legal
    # move is considered and every one is simulated, so the win is always found. Sampling
    # (gumbel_scale 1) should then play each move about as often as the improved policy says
    # (Danihelka et al.: argmax(g + logits + sigma(q)) samples softmax(logits + sigma(q))).
    from tests.test_mcts import _near_win

    state = _near_win()
    moves = legal_moves(state)
    win = next(m for m in moves if state.geo.keys[m.to] == "0,3")
    win_action = action_space(state.geo.board).encode(win)
    config = GumbelConfig(simulations=64, considered=len(moves))
    played, target = 0, []
    seeds = range(40)
    for seed in seeds:
        gen = gumbel_search(state, config, np.random.default_rng(seed), gumbel_scale=1.0)
        result = run_search(gen, UniformEvaluator())
        played += result.move == win
        target.append(dict(result.policy)[win_action])
    frequency, expected = played / len(seeds), float(np.mean(target))
    assert expected > 0.9
    assert abs(frequency - expected) < 0.1, (frequency, expected)

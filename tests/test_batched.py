"""Many games at once: batching across games changes nothing about any game, the network path
plays legal games with consistent timers, seeds decide games, 3-4 player games finish, and bad
settings are refused."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from ringrift.ai.batched import BatchedGame, BatchedSettings, Timers, play_alone, play_batched
from ringrift.ai.gumbel import GumbelConfig
from ringrift.ai.mcts import Evaluator, UniformEvaluator
from ringrift.ai.net_evaluator import NetEvaluator
from ringrift.ai.network import PolicyValueNet
from ringrift.game import GameConfig, fingerprint, move_from_str
from ringrift.game.actions import action_space
from tests.test_gumbel import CountingEvaluator, HashEvaluator

SQUARE8 = GameConfig.parse("square8_2p")
SMALL = GumbelConfig(simulations=8, considered=4)


def _settings(parallel: int, **kw: object) -> BatchedSettings:
    base: dict[str, object] = {"sample_moves": 10, "exploration": 0.7, "max_moves": 60}
    base.update(kw)
    return BatchedSettings(SMALL, parallel, **base)  # type: ignore[arg-type]


def _summary(game: BatchedGame) -> tuple[object, ...]:
    targets = [(t.move_index, t.policy, t.root_value, t.simulations) for t in game.targets]
    return (game.id, game.seed, game.record.moves, targets, game.decisions, fingerprint(game.state))


def _check_game(game: BatchedGame, config: GameConfig, limit: int) -> None:
    """The record replays with checked moves to the game's position; the game ended or reached
    the move limit; every target is a distribution over legal actions containing the move
    played, with a value per seat."""
    replayed = game.record.replay()
    assert fingerprint(replayed) == fingerprint(game.state)
    assert replayed.move_count == game.state.move_count == len(game.record.moves)
    assert game.state.is_over or game.state.move_count == limit
    assert game.record.seed == game.seed and game.record.config == config.name
    space = action_space(config.board)
    for t in game.targets:
        before = game.record.replay(t.move_index)
        played = move_from_str(before.geo, game.record.moves[t.move_index])
        probs = dict(t.policy)
        assert space.encode(played) in probs
        assert abs(sum(probs.values()) - 1.0) < 1e-9
        assert all(p >= 0 for p in probs.values())
        assert len(t.root_value) == config.num_players
        assert all(-1.0 <= v <= 1.0 for v in t.root_value)
        assert 1 <= t.simulations <= SMALL.simulations
    assert game.decisions == len(game.targets)
    indices = [t.move_index for t in game.targets]
    assert indices == sorted(set(indices))


# ----- 1. batched == alone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "evaluator", [HashEvaluator(), UniformEvaluator()], ids=["hash", "uniform"]
)
def test_batching_across_games_changes_no_game(evaluator: Evaluator) -> None:
    seeds = [11, 12, 13, 14, 15, 16]
    ids = [f"g{s}" for s in seeds]
    lone_games = [
        play_alone(SQUARE8, evaluator, _settings(6), s, i) for s, i in zip(seeds, ids, strict=True)
    ]
    assert len({tuple(g.record.moves) for g in lone_games}) == len(seeds), "seeds should differ"
    alone = [_summary(g) for g in lone_games]
    for parallel in (6, 4):  # all at once, and queued
        timers = Timers()
        games = play_batched(SQUARE8, evaluator, _settings(parallel), seeds, ids, timers)
        assert [g.id for g in games] == ids
        assert [_summary(g) for g in games] == alone
        # The games really shared calls: a lone game's waves hold at most `considered` leaves.
        assert timers.mean_batch > SMALL.considered


# ----- 2. the network path ---------------------------------------------------------------------


@pytest.mark.usefixtures("one_torch_thread")
def test_network_games_are_legal_and_timers_add_up() -> None:
    torch.manual_seed(0)
    net = CountingEvaluator(NetEvaluator(PolicyValueNet("square8", "b1c16")))
    settings = _settings(4, max_moves=40)
    seeds = [1, 2, 3, 4, 5]
    timers = Timers()
    games = play_batched(SQUARE8, net, settings, seeds, [f"n{s}" for s in seeds], timers)
    for game in games:
        _check_game(game, SQUARE8, 40)
    targets = [t for g in games for t in g.targets]
    assert timers.batches == len(net.batches)
    assert timers.evaluations == sum(net.batches)
    # No game ends within 40 moves, so every simulation is one leaf evaluation, plus the root.
    assert timers.evaluations == sum(1 + t.simulations for t in targets)
    assert timers.mean_batch > 1
    assert timers.mean_batch == pytest.approx(timers.evaluations / timers.batches)
    assert timers.positions == len(targets)
    assert timers.moves == sum(len(g.record.moves) for g in games) == 40 * len(seeds)
    assert timers.moves > timers.positions  # forced moves are played without a search
    assert timers.network_s > 0 and timers.engine_s > 0
    assert timers.network_s + timers.engine_s <= timers.total_s
    assert timers.search_s == pytest.approx(
        timers.total_s - timers.network_s - timers.engine_s, abs=1e-12
    )
    # A second run adds to the same timers.
    before = (timers.evaluations, timers.batches, timers.total_s)
    play_batched(SQUARE8, net, settings, seeds[:1], ["again"], timers)
    assert timers.evaluations > before[0] and timers.batches > before[1]
    assert timers.total_s > before[2]


# ----- 3. seeds decide games -------------------------------------------------------------------


def test_same_seeds_same_games_other_seeds_other_games() -> None:
    evaluator = HashEvaluator()
    settings = _settings(3, max_moves=40)

    def play(seeds: Sequence[int], prefix: str = "r") -> list[BatchedGame]:
        return play_batched(SQUARE8, evaluator, settings, seeds, [f"{prefix}{s}" for s in seeds])

    first = play([1, 2, 3])
    again = play([1, 2, 3])
    assert [_summary(g) for g in first] == [_summary(g) for g in again]
    # Ids are labels only; the order of the seeds does not matter either.
    relabelled = play([3, 2, 1], prefix="other")
    assert [g.record.moves for g in relabelled] == [g.record.moves for g in reversed(first)]
    other = play([4, 5, 6])
    records = {tuple(g.record.moves) for g in first + other}
    assert len(records) == 6, "six seeds should give six different games"


@pytest.mark.parametrize("settings_kw", [{"sample_moves": 0}, {"exploration": 0.0}])
def test_without_noise_the_seed_does_not_matter(settings_kw: dict[str, object]) -> None:
    settings = _settings(2, max_moves=30, **settings_kw)
    games = play_batched(SQUARE8, HashEvaluator(), settings, [1, 2], ["a", "b"])
    assert games[0].record.moves == games[1].record.moves
    assert [t.policy for t in games[0].targets] == [t.policy for t in games[1].targets]


# ----- 4. 3 and 4 players ----------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ["square8_3p", "square8_4p"])
def test_multiplayer_games_play_out(config_name: str) -> None:
    config = GameConfig.parse(config_name)
    settings = BatchedSettings(GumbelConfig(simulations=4, considered=4), 2, sample_moves=20)
    timers = Timers()
    games = play_batched(config, UniformEvaluator(), settings, [7, 8], ["m7", "m8"], timers)
    for game in games:
        _check_game(game, config, config.max_moves)
        assert game.targets
        if game.state.is_over:
            assert game.state.ranks is not None and len(game.state.ranks) == config.num_players
    assert any(g.state.is_over for g in games), "at least one game should finish"
    assert timers.moves == sum(g.state.move_count for g in games)


def test_multiplayer_root_values_are_per_seat() -> None:
    config = GameConfig.parse("hex8_4p")
    games = play_batched(config, HashEvaluator(), _settings(2, max_moves=30), [1, 2], ["a", "b"])
    for game in games:
        _check_game(game, config, 30)
        for t in game.targets:
            position = game.record.replay(t.move_index)
            ((_, value),) = HashEvaluator().evaluate([position])
            assert t.root_value == [round(float(v), 6) for v in value]


# ----- 5. settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"parallel_games": 0},
        {"parallel_games": -2},
        {"exploration": -0.5},
        {"sample_moves": -1},
    ],
)
def test_bad_settings_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BatchedSettings(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kw",
    [{"simulations": 0}, {"considered": 0}, {"c_puct": 0.0}, {"c_scale": -1.0}, {"c_visit": -1.0}],
)
def test_bad_search_settings_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GumbelConfig(**kw)  # type: ignore[arg-type]


def test_good_settings_and_arguments() -> None:
    settings = BatchedSettings(SMALL, 1, sample_moves=0, exploration=0.0, max_moves=4)
    assert settings.to_dict()["search"] == {
        "simulations": 8,
        "considered": 4,
        "c_puct": 1.25,
        "c_visit": 50.0,
        "c_scale": 0.1,
    }
    assert settings.to_dict()["parallel_games"] == 1
    with pytest.raises(ValueError):
        play_batched(SQUARE8, UniformEvaluator(), settings, [1, 2], ["only one id"])
    assert play_batched(SQUARE8, UniformEvaluator(), settings, [], []) == []
    (game,) = play_batched(SQUARE8, UniformEvaluator(), settings, [1], ["x"])
    assert game.state.move_count == 4
    assert np.isfinite([v for t in game.targets for v in t.root_value]).all()

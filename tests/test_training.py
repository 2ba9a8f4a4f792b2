"""The training library: config, schedule, checkpoints, the loop, its refusals and resume."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ringrift.ai.dataset import DatasetError, load_dataset, write_dataset
from ringrift.ai.encoding import ENCODER_VERSION
from ringrift.ai.mcts import SearchConfig, UniformEvaluator
from ringrift.ai.network import (
    ModelMismatchError,
    PolicyValueNet,
    load_model,
    read_metadata,
    save_model,
)
from ringrift.ai.selfplay import SelfplaySettings, play_game
from ringrift.game import GameConfig
from tests.training_fixtures import FAST
from training.checkpoint import (
    capture_rng_states,
    latest_checkpoint,
    list_checkpoints,
    restore_rng_states,
)
from training.config import ConfigError, TrainConfig, default, tiny
from training.loop import TrainingError, evaluate_losses, split_by_game, train
from training.schedule import MIN_LR_FRACTION, get_lr

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fresh(config: TrainConfig) -> PolicyValueNet:
    torch.manual_seed(config.seed)  # what train() does for fresh weights
    return PolicyValueNet("square8", config.arch)


def test_config_round_trip_and_refusals() -> None:
    for cfg in (tiny(), default(), TrainConfig.tiny(), FAST):
        assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert tiny().arch == "b4c64" and tiny().batch_size == 64 and default().arch == "b10c128"
    with pytest.raises(ConfigError, match="unknown training config keys: learning_rate"):
        TrainConfig.from_json('{"learning_rate": 0.1}')
    with pytest.raises(ConfigError, match="steps must be int"):
        TrainConfig.from_dict({"steps": 1.5})
    with pytest.raises(ConfigError, match="out of range: 0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="architecture"):
        TrainConfig(arch="resnet")
    assert TrainConfig.from_json('{"steps": 7}') == TrainConfig(steps=7)


def test_learning_rate_schedule() -> None:
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0)
    lrs = [get_lr(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(MIN_LR_FRACTION)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10], strict=False))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert get_lr(500, cfg) == pytest.approx(MIN_LR_FRACTION)
    assert get_lr(0, TrainConfig(steps=1, warmup_steps=0, lr=0.5)) == 0.5


def test_split_keeps_games_whole() -> None:
    game_index = np.repeat(np.arange(10), 8)
    train_rows, val_rows = split_by_game(game_index, 10, 0.2, seed=1)
    assert len(val_rows) == 16 and len(train_rows) == 64
    assert not set(game_index[train_rows]) & set(game_index[val_rows])
    assert len(split_by_game(game_index, 10, 0.0, 1)[1]) == 0
    assert len(split_by_game(game_index[:8], 1, 0.5, 1)[1]) == 0  # never the only game


def test_training_reduces_the_loss(dataset: Path, tmp_path: Path) -> None:
    config = FAST.replace(arch="b2c32", steps=40, lr=5e-3)
    calls: list[tuple[int, int, dict[str, float]]] = []
    result = train(
        config,
        dataset,
        tmp_path / "model.pt",
        board="square8",
        checkpoint_dir=tmp_path / "ckpt",
        progress=lambda step, total, losses: calls.append((step, total, losses)),
        generation=1,
    )
    assert result.steps == 40 and result.resumed_from_step is None
    assert result.samples_seen == 40 * 32 and result.validation_samples > 0
    assert [c[0] for c in calls] == [10, 20, 30, 40] and all(c[1] == 40 for c in calls)
    assert all(np.isfinite(list(c[2].values())).all() for c in calls)

    ds = load_dataset(dataset, expect_encoder_version=ENCODER_VERSION, expect_board="square8")
    train_rows, _ = split_by_game(ds.game_index, ds.num_games, config.validation_fraction, 0)
    before = evaluate_losses(_fresh(config), ds, train_rows)
    trained = load_model(tmp_path / "model.pt", "square8", config.arch)
    after = evaluate_losses(trained, ds, train_rows)
    assert after["total"] < 0.9 * before["total"], (before, after)
    assert after["policy"] < before["policy"] and after["value"] < before["value"]
    assert result.final_losses["train_total"] == pytest.approx(after["total"], rel=1e-4)

    meta = read_metadata(tmp_path / "model.pt")
    assert meta["generation"] == 1 and meta["dataset_samples"] == len(ds)
    assert TrainConfig.from_dict(meta["config"]) == config
    assert meta["final_losses"] == result.final_losses
    assert [s for s, _ in list_checkpoints(tmp_path / "ckpt")] == [30, 40]  # keep 2


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_where_it_left_off(dataset: Path, tmp_path: Path) -> None:
    config = FAST.replace(steps=30)
    whole = train(
        config, dataset, tmp_path / "a.pt", board="square8", checkpoint_dir=tmp_path / "a"
    )

    def stop_at_25(step: int, total: int, losses: dict[str, float]) -> None:
        if step == 25:
            raise Interrupt

    kwargs: dict[str, Any] = {"board": "square8", "checkpoint_dir": tmp_path / "b"}
    with pytest.raises(Interrupt):
        train(config, dataset, tmp_path / "b.pt", progress=stop_at_25, progress_every=5, **kwargs)
    assert not (tmp_path / "b.pt").exists()
    resumed = train(config, dataset, tmp_path / "b.pt", **kwargs)
    assert resumed.resumed_from_step == 20 and resumed.steps == 30
    assert resumed.steps_this_call == 10 and resumed.samples_seen == 30 * 32
    assert np.isfinite(resumed.final_losses["train_total"])
    # Same batches, same optimiser state: the resumed run ends where the whole run ended.
    a = load_model(tmp_path / "a.pt", "square8", config.arch).state_dict()
    b = load_model(tmp_path / "b.pt", "square8", config.arch).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    assert whole.final_losses["train_total"] == pytest.approx(
        resumed.final_losses["train_total"], rel=1e-4
    )

    # A finished run asked again writes the model from its last checkpoint and trains no more.
    again = train(config, dataset, tmp_path / "c.pt", **kwargs)
    assert again.resumed_from_step == 30 and again.steps_this_call == 0
    # Extending a finished run continues it; changing what it trains on is refused.
    longer = train(config.replace(steps=40), dataset, tmp_path / "d.pt", **kwargs)
    assert longer.resumed_from_step == 30 and longer.steps == 40
    with pytest.raises(TrainingError, match=r"another config \(lr: 0.002 -> 0.001\)"):
        train(config.replace(steps=50, lr=1e-3), dataset, tmp_path / "e.pt", **kwargs)


def test_a_corrupt_newest_checkpoint_falls_back(
    dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = FAST.replace(steps=20)
    ckpt = tmp_path / "ckpt"
    train(config, dataset, tmp_path / "m.pt", board="square8", checkpoint_dir=ckpt)
    (step10, _), (step20, newest) = list_checkpoints(ckpt)
    assert (step10, step20) == (10, 20)
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a crash mid-copy
    with caplog.at_level(logging.WARNING, logger="training.checkpoint"):
        found = latest_checkpoint(ckpt)
    assert found is not None and found.step == 10
    assert "ckpt_00000020.pt" in caplog.text and "falling back" in caplog.text
    stale = ckpt / ".ckpt_00000020.pt.x1y2.tmp"  # a writer killed mid-write
    stale.write_bytes(b"partial")
    result = train(config, dataset, tmp_path / "m.pt", board="square8", checkpoint_dir=ckpt)
    assert result.resumed_from_step == 10 and result.steps == 20
    assert not stale.exists()
    assert latest_checkpoint(ckpt).step == 20  # type: ignore[union-attr]
    for _, path in list_checkpoints(ckpt):
        path.write_bytes(b"garbage")
    assert latest_checkpoint(ckpt) is None


def test_refusals(dataset: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    save_model(other, PolicyValueNet("square8", "b2c16"))
    with pytest.raises(ModelMismatchError, match="architecture"):
        train(
            FAST,
            dataset,
            tmp_path / "m.pt",
            board="square8",
            init_model_path=other,
            checkpoint_dir=tmp_path / "c1",
        )
    with pytest.raises(DatasetError, match="expected 'hex8'"):
        train(FAST, dataset, tmp_path / "m.pt", board="hex8", checkpoint_dir=tmp_path / "c2")

    small = tmp_path / "small.npz"
    game = play_game(
        GameConfig.parse("square8_2p"),
        UniformEvaluator(),
        SelfplaySettings(SearchConfig(simulations=4), max_moves=40),
        9,
        "small",
    )
    stats = write_dataset([game.to_json()], small, "square8", augment=False)
    assert stats.num_samples < 64
    with pytest.raises(TrainingError, match="do not fill one batch of 64; refusing"):
        train(tiny(), small, tmp_path / "m.pt", board="square8", checkpoint_dir=tmp_path / "c3")
    assert not (tmp_path / "m.pt").exists()


def test_starting_from_a_saved_model(dataset: Path, tmp_path: Path) -> None:
    start = _fresh(FAST.replace(seed=5))
    save_model(tmp_path / "start.pt", start)
    config = FAST.replace(steps=1, lr=1e-9, warmup_steps=0)
    train(
        config,
        dataset,
        tmp_path / "m.pt",
        board="square8",
        init_model_path=tmp_path / "start.pt",
        checkpoint_dir=tmp_path / "c",
    )
    end = load_model(tmp_path / "m.pt", "square8", config.arch).state_dict()
    # One step at a negligible rate: the conv weights are still the saved model's.
    torch.testing.assert_close(
        end["stem.weight"], start.state_dict()["stem.weight"], atol=1e-6, rtol=0
    )


def test_rng_states_round_trip() -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    states = capture_rng_states()
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_states(states)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2] == second[2]

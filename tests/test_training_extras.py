"""Training extras: weight averaging, early stopping, progress numbers, the TensorBoard log and
the forward pass's precision per device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ringrift.ai.dataset import load_dataset
from ringrift.ai.encoding import ENCODER_VERSION
from ringrift.ai.network import PolicyValueNet, load_model, read_metadata
from tests.training_fixtures import FAST
from training.checkpoint import latest_checkpoint
from training.config import ConfigError, TrainConfig, default, tiny
from training.data import TrainingError, make_batch
from training.early_stopping import EarlyStopping
from training.ema import ModelEma, ema_decay_at
from training.loop import train
from training.losses import autocast_dtype, compute_losses

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Interrupt(Exception):
    pass


def _stop_at(at: int) -> Any:
    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        if step == at:
            raise Interrupt

    return progress


def _assert_same_weights(a: Path, b: Path, arch: str) -> None:
    sa = load_model(a, "square8", arch).state_dict()
    sb = load_model(b, "square8", arch).state_dict()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=1e-5, atol=1e-6, msg=key)


def test_new_config_keys() -> None:
    assert tiny().ema_decay == 0.0 and default().ema_decay == 0.999
    assert tiny().validation_every == 0 and tiny().early_stop_patience == 0
    cfg = FAST.replace(ema_decay=0.99, validation_every=5, early_stop_patience=3)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    # A file written before these keys existed reads as what it ran with: no average, no stop.
    assert TrainConfig.from_json('{"steps": 7}').ema_decay == 0.0
    with pytest.raises(ConfigError, match="unknown training config keys: ema"):
        TrainConfig.from_json('{"ema": 0.9}')
    for bad in ({"ema_decay": 1.0}, {"ema_decay": -0.1}, {"validation_every": -1}):
        with pytest.raises(ConfigError, match="out of range"):
            TrainConfig.from_dict(bad)
    with pytest.raises(ConfigError, match="needs validation_every"):
        TrainConfig(early_stop_patience=2)
    with pytest.raises(ConfigError, match="must be int"):
        TrainConfig(validation_every=True)


def test_model_ema_averages_parameters_and_copies_buffers() -> None:
    torch.manual_seed(0)
    model = PolicyValueNet("square8", "b1c16")
    ema = ModelEma(model, 0.9)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        for b in model.buffers():
            if b.is_floating_point():
                b.add_(2.0)
    ema.update(model, step=1000)
    d = ema_decay_at(0.9, 1000)
    assert d == 0.9 and ema_decay_at(0.999, 0) == pytest.approx(0.1)
    state, live = ema.module.state_dict(), model.state_dict()
    for name, _ in model.named_parameters():
        torch.testing.assert_close(state[name], before[name] + (1 - d))
    for name, _ in model.named_buffers():
        assert torch.equal(state[name], live[name]), name
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_is_saved_checkpointed_and_resumed(dataset: Path, tmp_path: Path) -> None:
    config = FAST.replace(steps=30, ema_decay=0.9)
    whole = train(
        config, dataset, tmp_path / "a.pt", board="square8", checkpoint_dir=tmp_path / "a"
    )
    # The saved model is the averaged copy, not the raw weights.
    ckpt = latest_checkpoint(tmp_path / "a")
    assert ckpt is not None and ckpt.step == 30 and ckpt.ema_state is not None
    saved = load_model(tmp_path / "a.pt", "square8", config.arch).state_dict()
    for key, value in saved.items():
        assert torch.equal(value, ckpt.ema_state[key]), key
    assert not torch.equal(saved["stem.weight"], ckpt.model_state["stem.weight"])
    assert read_metadata(tmp_path / "a.pt")["ema"] is True
    assert json.loads((tmp_path / "a" / "config.json").read_text())["ema_decay"] == 0.9

    kwargs: dict[str, Any] = {"board": "square8", "checkpoint_dir": tmp_path / "b"}
    with pytest.raises(Interrupt):
        train(config, dataset, tmp_path / "b.pt", progress=_stop_at(25), progress_every=5, **kwargs)
    resumed = train(config, dataset, tmp_path / "b.pt", **kwargs)
    assert resumed.resumed_from_step == 20
    _assert_same_weights(tmp_path / "a.pt", tmp_path / "b.pt", config.arch)
    assert whole.final_losses["train_total"] == pytest.approx(
        resumed.final_losses["train_total"], rel=1e-4
    )
    with pytest.raises(TrainingError, match=r"another config \(ema_decay: 0.9 -> 0.99\)"):
        train(config.replace(steps=40, ema_decay=0.99), dataset, tmp_path / "c.pt", **kwargs)
    with pytest.raises(TrainingError, match=r"another config \(ema_decay: 0.9 -> 0.0\)"):
        train(config.replace(steps=40, ema_decay=0.0), dataset, tmp_path / "c.pt", **kwargs)


def test_early_stopping_bookkeeping() -> None:
    stopper = EarlyStopping(patience=2)
    decisions = [stopper.update(x) for x in (3.0, 2.0, 2.5, 1.9, 2.0, float("nan"))]
    assert decisions == [False, False, False, False, False, True]
    assert stopper.best == 1.9 and stopper.bad_checks == 2
    never = EarlyStopping(patience=0)
    assert not any(never.update(x) for x in (1.0, 2.0, 3.0, 4.0))


def test_early_stopping_stops_and_resumes_to_the_same_stop(dataset: Path, tmp_path: Path) -> None:
    # Checks every 2 steps; on this small set the validation loss bottoms out early, so the run
    # stops long before its 200 steps. A checkpoint every 8 steps lands between the best check
    # and the stop, so the resumed run must carry the count of checks without improvement.
    config = FAST.replace(
        steps=200, lr=5e-3, validation_every=2, early_stop_patience=4, checkpoint_every=8
    )
    whole = train(
        config, dataset, tmp_path / "a.pt", board="square8", checkpoint_dir=tmp_path / "a"
    )
    assert whole.stopped_early and whole.steps < 200
    assert whole.steps % 2 == 0 and whole.samples_seen == whole.steps * 32
    assert (
        whole.best_val_loss is not None and whole.best_val_loss <= whole.final_losses["val_total"]
    )
    ckpt = latest_checkpoint(tmp_path / "a")
    assert ckpt is not None and ckpt.step == whole.steps
    assert ckpt.scheduler_state["stopped_early"] is True
    assert ckpt.scheduler_state["bad_checks"] == 4
    meta = read_metadata(tmp_path / "a.pt")
    assert meta["stopped_early"] is True and meta["steps"] == whole.steps

    interrupt_at = whole.steps - 2  # after a checkpoint written while checks were failing
    kwargs: dict[str, Any] = {"board": "square8", "checkpoint_dir": tmp_path / "b"}
    with pytest.raises(Interrupt):
        train(
            config,
            dataset,
            tmp_path / "b.pt",
            progress=_stop_at(interrupt_at),
            progress_every=1,
            **kwargs,
        )
    before = latest_checkpoint(tmp_path / "b")
    assert before is not None and before.scheduler_state["bad_checks"] > 0
    resumed = train(config, dataset, tmp_path / "b.pt", **kwargs)
    assert resumed.stopped_early and resumed.steps == whole.steps
    assert resumed.best_val_loss == pytest.approx(whole.best_val_loss, rel=1e-6)
    _assert_same_weights(tmp_path / "a.pt", tmp_path / "b.pt", config.arch)

    # A stopped run asked again trains no more.
    again = train(config, dataset, tmp_path / "c.pt", **kwargs)
    assert again.stopped_early and again.steps_this_call == 0 and again.steps == whole.steps


def test_progress_numbers_and_tensorboard_log(dataset: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = FAST.replace(steps=20, validation_every=10)
    calls: list[tuple[int, dict[str, float]]] = []
    result = train(
        config,
        dataset,
        tmp_path / "m.pt",
        board="square8",
        checkpoint_dir=tmp_path / "ckpt",
        progress=lambda step, total, losses: calls.append((step, losses)),
        progress_every=5,
    )
    assert [s for s, _ in calls] == [5, 10, 15, 20]
    for step, losses in calls:
        assert {"total", "policy", "value", "lr", "samples_per_s", "eta_s"} <= set(losses)
        assert losses["samples_per_s"] > 0
        expected_eta = (20 - step) * 32 / losses["samples_per_s"]
        assert losses["eta_s"] == pytest.approx(expected_eta)
    assert calls[-1][1]["eta_s"] == 0.0
    assert not any("samples_per_s" in k or "eta" in k for k in result.final_losses)
    assert not result.stopped_early and result.best_val_loss is not None

    log = EventAccumulator(str(tmp_path / "ckpt" / "tensorboard"))
    log.Reload()
    tags = set(log.Tags()["scalars"])
    assert {"train/total", "train/lr", "train/samples_per_s", "val/total"} <= tags
    assert [e.step for e in log.Scalars("train/total")] == [5, 10, 15, 20]
    assert [e.step for e in log.Scalars("val/total")] == [10, 20]
    assert min(e.value for e in log.Scalars("val/total")) == pytest.approx(
        result.best_val_loss, rel=1e-6
    )


def test_forward_precision_per_device(dataset: Path) -> None:
    assert autocast_dtype(torch.device("cpu")) is None
    assert autocast_dtype(torch.device("cuda")) is torch.bfloat16
    assert autocast_dtype(torch.device("cuda", 0)) is torch.bfloat16
    # On the CPU the forward pass is plain float32: no autocast around it (a CPU autocast would
    # turn the convolutions' outputs into bf16).
    ds = load_dataset(dataset, expect_encoder_version=ENCODER_VERSION, expect_board="square8")
    torch.manual_seed(0)
    model = PolicyValueNet("square8", "b1c16")
    seen: list[torch.dtype] = []
    model.stem.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    batch = make_batch(ds, np.arange(16), torch.device("cpu"))
    total, policy, value = compute_losses(model, batch, 1.0)
    assert seen == [torch.float32] and not torch.is_autocast_enabled("cpu")
    assert total.dtype == policy.dtype == value.dtype == torch.float32

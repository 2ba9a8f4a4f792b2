"""The training loop: one dataset in, one model out, resumable from its checkpoints.

``train(config, dataset_path, out_model_path, board=..., checkpoint_dir=...)`` reads a dataset
written by ``ringrift.ai.dataset.write_dataset`` and fits a ``PolicyValueNet`` to it. The parts
live beside this module, one job each: ``data`` (the split by game, the batch order, batches),
``losses``, ``optim`` and ``schedule``, ``checkpoint``, ``ema`` and ``early_stopping``,
``distributed`` (DDP under torchrun).

- **data**: whole games are held out for validation (``validation_fraction``); batch ``k`` of
  the run is a pure function of ``(seed, k)``, so the data position after a resume is just the
  step. ``recency_weight`` draws recent games more often. A dataset with fewer training rows
  than one batch is refused.
- **weight average**: with ``ema_decay > 0`` a moving average of the weights follows every
  step; it is checkpointed, validated and saved as the final model in place of the raw weights.
- **validation and early stopping**: with ``validation_every > 0`` the validation loss (of the
  model that would be saved) is measured every that many steps; with ``early_stop_patience``
  the run stops, checkpointing that step, once that many checks in a row found no new best.
  The count and the best so far live in the checkpoint, so a resume stops where a whole run
  would, and re-running a stopped run trains no more.
- **checkpoints**: every ``checkpoint_every`` steps, at the last step and whenever the call
  stops early, atomically; a run started with checkpoints in its folder continues from the
  newest usable one (model, optimiser, RNG, step), so a killed worker loses at most one
  interval. ``on_checkpoint`` sees each file's checksum before it goes live and
  ``verify_checkpoint`` may reject a file on resume (the training task keeps the checksums in
  the ledger); ``after_checkpoint`` sees each file once it is in place.
- **stopping a call early**: ``deadline`` (a ``time.monotonic()`` value), or ``budget_s``
  seconds after the first step, ends the call at the first progress report past it, and
  ``should_stop`` is asked at every report; either way the call checkpoints and returns with
  ``stopped`` set and no model written, and the next call on the same folder continues exactly
  where this one stopped. The training task uses this to train in segments and to cancel.
- **output**: the final model via ``save_model`` (contract metadata plus the config, the
  generation, the dataset size and the final losses), written atomically.

Losses are reported to ``progress(step, total_steps, losses)`` every ``progress_every`` steps,
averaged over the steps since the previous report (``total``, ``policy``, ``value``), with the
learning rate (``lr``), the rate since the previous report (``samples_per_s``) and the time
left at that rate (``eta_s``). A non-finite loss stops the run with ``TrainingError`` before
anything is checkpointed or saved. The same numbers, and validation losses, go to a TensorBoard
log in ``<checkpoint_dir>/tensorboard/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ringrift.ai.dataset import Dataset, load_dataset
from ringrift.ai.encoding import ENCODER_VERSION
from ringrift.ai.network import PolicyValueNet, load_model, save_model
from ringrift.game.boards import BoardType
from training.checkpoint import (
    Checkpoint,
    CheckpointHook,
    SavedHook,
    SetAsideFn,
    VerifyFn,
    capture_rng_states,
    latest_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from training.config import TrainConfig
from training.data import (
    BatchOrder,
    TrainingError,
    draw_symmetries,
    make_batch,
    recency_weights,
    require_symmetry_maps,
    split_by_game,
)
from training.distributed import DistContext, rank_device, wrap
from training.early_stopping import EarlyStopping
from training.ema import ModelEma
from training.losses import compute_losses, eval_subset, evaluate_losses
from training.optim import make_optimizer, optimizer_step
from training.schedule import get_lr

__all__ = ["TrainResult", "TrainingError", "train", "evaluate_losses", "split_by_game"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, dict[str, float]], None]
StopFn = Callable[[], "str | None"]

# Settings a resumed run may change; anything else must match the checkpoint's config.
RESUMABLE_CHANGES = frozenset({"steps", "device", "checkpoint_every", "keep_checkpoints"})
# Why a call stopped before the run's end (TrainResult.stopped).
SEGMENT, CANCELLED = "segment", "cancelled"
# The same, and early stopping, as the codes the ranks agree on (0: go on).
_GO_ON, _SEGMENT_ENDS, _CANCEL, _STOP_EARLY = range(4)


@dataclass(frozen=True)
class TrainResult:
    steps: int  # the run's step count when this call returned (including earlier calls)
    final_losses: dict[str, float]  # empty when the call stopped before the run's end
    samples_seen: int  # training rows consumed over the whole run
    resumed_from_step: int | None  # the checkpoint step this call continued from
    model_path: Path | None  # None when the call stopped before the run's end
    train_samples: int
    validation_samples: int
    seconds: float  # wall time of this call
    steps_this_call: int = 0
    loop_seconds: float = 0.0  # of which in optimiser steps (and their checkpoints)
    metadata: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False  # stopped by early_stop_patience before config.steps
    best_val_loss: float | None = None  # best total validation loss of the periodic checks
    stopped: str | None = None  # SEGMENT or CANCELLED: checkpointed, no model written

    @property
    def finished(self) -> bool:
        return self.stopped is None

    @property
    def steps_per_s(self) -> float:
        """Optimiser steps per second of this call, loading and final evaluation excluded."""
        return self.steps_this_call / self.loop_seconds if self.loop_seconds > 0 else 0.0


def _dataset_identity(ds: Dataset) -> dict[str, Any]:
    ids = json.dumps(ds.meta.get("game_ids"), separators=(",", ":")).encode()
    return {"num_samples": len(ds), "games_sha256": hashlib.sha256(ids).hexdigest()}


def _check_resume(
    ckpt: Checkpoint, config: TrainConfig, identity: dict[str, Any], board: BoardType
) -> None:
    where = f"checkpoint {ckpt.path}"
    try:
        old = TrainConfig.from_dict(ckpt.config)
    except ValueError as e:
        raise TrainingError(f"{where}: unreadable config ({e})") from None
    old_d, new_d = old.to_dict(), config.to_dict()
    changed = sorted(k for k in new_d if old_d[k] != new_d[k] and k not in RESUMABLE_CHANGES)
    if changed:
        diffs = ", ".join(f"{k}: {old_d[k]!r} -> {new_d[k]!r}" for k in changed)
        raise TrainingError(f"{where}: written with another config ({diffs}); use a new folder")
    if ckpt.data_position.get("dataset") != identity:
        raise TrainingError(f"{where}: written for another dataset; use a new checkpoint folder")
    if ckpt.model_meta.get("board", board.value) != board.value:
        raise TrainingError(f"{where}: a {ckpt.model_meta.get('board')} model, not {board.value}")
    if ckpt.step > config.steps:
        raise TrainingError(f"{where}: step {ckpt.step} is past the run's {config.steps} steps")
    if old.steps != config.steps:
        log.warning(
            "%s: resuming a %d-step run as a %d-step run; the learning-rate schedule changes",
            where,
            old.steps,
            config.steps,
        )


def train(
    config: TrainConfig,
    dataset_path: str | os.PathLike[str],
    out_model_path: str | os.PathLike[str],
    *,
    board: BoardType | str,
    init_model_path: str | os.PathLike[str] | None = None,
    checkpoint_dir: str | os.PathLike[str],
    progress: ProgressFn | None = None,
    progress_every: int = 10,
    guard: Callable[[], None] | None = None,
    generation: int | None = None,
    meta: dict[str, Any] | None = None,
    deadline: float | None = None,
    budget_s: float | None = None,
    should_stop: StopFn | None = None,
    on_checkpoint: CheckpointHook | None = None,
    after_checkpoint: SavedHook | None = None,
    verify_checkpoint: VerifyFn | None = None,
    set_aside_checkpoint: SetAsideFn | None = None,
    dist: DistContext | None = None,
) -> TrainResult:
    """Train on ``dataset_path`` and write the model to ``out_model_path``; see the module doc.

    ``init_model_path`` starts from a saved model (which must match ``config.arch``, ``board``
    and the encoder: ``ModelMismatchError`` otherwise); without it the weights are fresh from
    ``config.seed``. Checkpoints already in ``checkpoint_dir`` are resumed from. ``meta`` adds
    keys to the saved model's metadata. ``guard`` is called before every checkpoint and before
    the final model is written; it raises to stop a holder that may no longer write (a lost
    lease). Under ``dist`` (several ranks) only rank 0 reports, checkpoints and saves, and the
    callbacks other than ``verify_checkpoint`` (which every rank runs on the files it might
    resume from) are called on rank 0 only; the ranks check that they resume from one step.
    """
    started = time.perf_counter()
    board = BoardType(board)
    device = rank_device(dist, config.device)
    main = dist is None or dist.is_main
    checkpoint_dir = Path(checkpoint_dir)
    out_model_path = Path(out_model_path)
    if progress_every < 1:
        raise ValueError(f"progress_every must be positive, got {progress_every}")
    if dist is not None and config.batch_size % dist.world_size:
        raise TrainingError(
            f"batch_size {config.batch_size} does not split evenly over {dist.world_size} ranks"
        )

    ds = load_dataset(dataset_path, expect_encoder_version=ENCODER_VERSION, expect_board=board)
    if len(ds) == 0:
        raise TrainingError(f"{dataset_path}: the dataset is empty; refusing to train on nothing")
    if config.augment:
        require_symmetry_maps(ds)
    train_rows, val_rows = split_by_game(
        ds.game_index, ds.num_games, config.validation_fraction, config.seed
    )
    if len(train_rows) < config.batch_size:
        raise TrainingError(
            f"{dataset_path}: {len(train_rows)} training samples ({len(ds)} in all, "
            f"{len(val_rows)} held out for validation) do not fill one batch of "
            f"{config.batch_size}; refusing to train on too little data"
        )
    identity = _dataset_identity(ds)

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    ckpt = latest_checkpoint(
        checkpoint_dir,
        verify=verify_checkpoint,
        set_aside=set_aside_checkpoint if main else None,
    )
    if dist is not None:  # every rank must continue from the same step as rank 0
        mine = ckpt.step if ckpt is not None else -1
        chosen = dist.agree(mine, device)
        if chosen != mine:
            raise TrainingError(
                f"rank {dist.rank} found checkpoint step {mine} in {checkpoint_dir}, rank 0 "
                f"found {chosen}; the ranks must share one checkpoint folder"
            )
    if ckpt is not None:
        _check_resume(ckpt, config, identity, board)

    torch.manual_seed(config.seed)
    if ckpt is None and init_model_path is not None:
        model = load_model(init_model_path, board, config.arch)
    else:
        model = PolicyValueNet(board, config.arch)
    model.to(device).train()
    optimizer = make_optimizer(model, config)
    ema = ModelEma(model, config.ema_decay) if config.ema_decay > 0 else None
    start_step = 0
    stopper = EarlyStopping(config.early_stop_patience)
    stopped_early = False
    last: dict[str, float] = {}  # the latest report's losses
    if ckpt is not None:
        model.load_state_dict(ckpt.model_state)
        optimizer.load_state_dict(ckpt.optimizer_state)
        if ema is not None:
            if ckpt.ema_state is None:
                raise TrainingError(f"checkpoint {ckpt.path}: no averaged weights to resume")
            ema.load_state_dict(ckpt.ema_state)
        restore_rng_states(ckpt.rng_states)
        start_step = ckpt.step
        stopper.best = ckpt.scheduler_state.get("best_val_loss")
        stopper.bad_checks = int(ckpt.scheduler_state.get("bad_checks", 0))
        stopped_early = bool(ckpt.scheduler_state.get("stopped_early", False))
        saved = ckpt.scheduler_state.get("last_losses")
        last = {str(k): float(v) for k, v in saved.items()} if isinstance(saved, dict) else {}
        log.info("resuming from %s at step %d of %d", ckpt.path, start_step, config.steps)
        if stopped_early:
            log.info("%s: the run stopped early at step %d; training no more", ckpt.path, ckpt.step)
    if main:
        (checkpoint_dir / "config.json").write_text(config.to_json() + "\n")
    net = wrap(model, dist, device)  # what the steps run through (DDP under several ranks)
    eval_model = ema.module if ema is not None else model  # the model that will be saved
    validate = config.validation_every > 0 and len(val_rows) > 0
    if config.validation_every > 0 and not len(val_rows):
        log.warning("no validation games held out: validation_every and early stopping are off")

    weights = recency_weights(ds.game_index, train_rows, ds.num_games, config.recency_weight)
    order = BatchOrder(train_rows, config.batch_size, config.seed, weights)
    loop_started = time.perf_counter()
    stop_at = deadline  # when this call stops: the deadline, or the budget from the first step
    if budget_s is not None:
        by_budget = time.monotonic() + budget_s
        stop_at = by_budget if stop_at is None else min(stop_at, by_budget)
    window = torch.zeros(3, device=device)  # summed (total, policy, value) since last report
    window_steps = 0
    window_started = loop_started
    end_step = start_step
    stopped: str | None = None

    def report(done: int) -> dict[str, float]:
        nonlocal window, window_steps, window_started
        mean = window / max(window_steps, 1)
        if dist is not None:
            mean = dist.mean(mean)
        total, policy, value = mean.tolist()
        if not all(math.isfinite(x) for x in (total, policy, value)):
            raise TrainingError(
                f"loss is not finite by step {done} (total {total}, policy {policy}, "
                f"value {value}); nothing saved past the last checkpoint"
            )
        now = time.perf_counter()
        rate = window_steps * config.batch_size / max(now - window_started, 1e-9)
        window = torch.zeros(3, device=device)
        window_steps = 0
        window_started = now
        return {
            "total": total,
            "policy": policy,
            "value": value,
            "lr": get_lr(done - 1, config),
            "samples_per_s": rate,
            "eta_s": (config.steps - done) * config.batch_size / rate,
        }

    def stop_code(early: bool) -> int:
        """Rank 0's reason to stop this call now (0: go on), shared with every rank."""
        code = _GO_ON
        if main:
            if early:
                code = _STOP_EARLY
            elif should_stop is not None and should_stop() is not None:
                code = _CANCEL
            elif stop_at is not None and time.monotonic() >= stop_at:
                code = _SEGMENT_ENDS
        return dist.agree(code, device) if dist is not None else code

    def write_checkpoint(done: int, lr: float) -> None:
        if guard is not None:
            guard()  # may this process still write? (raises when it may not)
        save_checkpoint(
            checkpoint_dir,
            done,
            model,
            optimizer,
            {
                "step": done,
                "lr": lr,
                "best_val_loss": stopper.best,
                "bad_checks": stopper.bad_checks,
                "stopped_early": stopped_early,
                "last_losses": dict(last),  # the final model's metadata carries them
            },
            capture_rng_states(),
            config,
            {"step": done, "epoch": done // order.per_epoch, "dataset": identity},
            ema_state=ema.state_dict() if ema is not None else None,
            on_written=on_checkpoint,
            on_saved=after_checkpoint,
        )

    purge = start_step + 1 if ckpt is not None else None  # events past the checkpoint
    writer = _summary_writer(checkpoint_dir, purge) if main else None
    try:
        for step in range(start_step, config.steps if not stopped_early else start_step):
            rows = order.indices(step)
            syms = draw_symmetries(config.seed, step, len(rows), board) if config.augment else None
            if dist is not None:  # rows and their symmetries sharded alike
                rows, syms = dist.shard(rows), None if syms is None else dist.shard(syms)
            batch = make_batch(ds, rows, device, syms)
            total, policy, value = compute_losses(net, batch, config.value_weight)
            lr = optimizer_step(model, optimizer, total, step, config)
            if ema is not None:
                ema.update(model, step)
            window += torch.stack([total.detach(), policy.detach(), value.detach()])
            window_steps += 1

            done = end_step = step + 1
            early = False
            if validate and done % config.validation_every == 0 and main:
                assert writer is not None
                val = _final_eval(eval_model, ds, val_rows, config, device)
                for k, v in val.items():
                    writer.add_scalar(f"val/{k}", v, done)
                early = stopper.update(val["total"]) and done < config.steps
                if early:
                    log.info(
                        "stopping early at step %d: validation loss %.4f, best %.4f, "
                        "%d checks without improvement",
                        done,
                        val["total"],
                        stopper.best,
                        stopper.bad_checks,
                    )
            reporting = done % progress_every == 0 or done == config.steps
            checked = validate and done % config.validation_every == 0
            asked = (reporting or checked) and done < config.steps
            code = stop_code(early) if asked else _GO_ON
            stopped_early = stopped_early or code == _STOP_EARLY
            stopped = {_SEGMENT_ENDS: SEGMENT, _CANCEL: CANCELLED}.get(code)
            at_checkpoint = (
                done % config.checkpoint_every == 0 or done == config.steps or code != _GO_ON
            )
            if at_checkpoint or reporting:
                last = report(done)  # also refuses to checkpoint a diverged model
                if main:
                    assert writer is not None
                    for k in ("total", "policy", "value"):
                        writer.add_scalar(f"train/{k}", last[k], done)
                    writer.add_scalar("train/lr", last["lr"], done)
                    writer.add_scalar("train/samples_per_s", last["samples_per_s"], done)
                    if at_checkpoint:
                        write_checkpoint(done, lr)
                        writer.flush()
                    if progress is not None:
                        progress(done, config.steps, last)
                if dist is not None and at_checkpoint:
                    dist.barrier()  # no rank runs ahead of a checkpoint that may fail
            if code != _GO_ON:
                break

        trained_s = time.perf_counter() - loop_started
        log.info(
            "trained steps %d..%d in %.1f s (%.2f steps/s)%s",
            start_step,
            end_step,
            trained_s,
            (end_step - start_step) / trained_s if trained_s > 0 else 0.0,
            f"; stopped ({stopped}) with the run unfinished" if stopped else "",
        )
        final: dict[str, float] = {}
        if stopped is None and main:
            assert writer is not None
            final = _final_losses(eval_model, ds, train_rows, val_rows, config, device, last)
            for k, v in final.items():
                writer.add_scalar(f"final/{k}", v, end_step)
    finally:
        if writer is not None:
            writer.close()

    model_meta = {
        **(meta or {}),
        "config": config.to_dict(),
        "generation": generation,
        "steps": end_step,
        "dataset_samples": len(ds),
        "dataset_games": ds.num_games,
        "train_samples": int(len(train_rows)),
        "validation_samples": int(len(val_rows)),
        "final_losses": final,
        "ema": ema is not None,
        "stopped_early": stopped_early,
        "best_val_loss": stopper.best,
    }
    if stopped is None and main:
        if guard is not None:
            guard()
        save_model(out_model_path, eval_model, model_meta)
    if dist is not None:
        dist.barrier()
    return TrainResult(
        steps=end_step,
        final_losses=final,
        samples_seen=end_step * config.batch_size,
        resumed_from_step=ckpt.step if ckpt is not None else None,
        model_path=out_model_path if stopped is None else None,
        train_samples=int(len(train_rows)),
        validation_samples=int(len(val_rows)),
        seconds=time.perf_counter() - started,
        steps_this_call=end_step - start_step,
        loop_seconds=trained_s,
        metadata=model_meta,
        stopped_early=stopped_early,
        best_val_loss=stopper.best,
        stopped=stopped,
    )


def _summary_writer(checkpoint_dir: Path, purge_step: int | None) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``<checkpoint_dir>/tensorboard``.

    A resumed run purges the events its previous attempt logged past the checkpoint it resumes
    from, so each step is shown once.
    """
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when training

    return SummaryWriter(log_dir=str(checkpoint_dir / "tensorboard"), purge_step=purge_step)


def _final_losses(
    model: nn.Module,
    ds: Dataset,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    config: TrainConfig,
    device: torch.device,
    last: dict[str, float],
) -> dict[str, float]:
    """Losses of the saved model on both splits, and the last training window's."""
    final = {f"train_{k}": v for k, v in _final_eval(model, ds, train_rows, config, device).items()}
    if len(val_rows):
        final |= {
            f"val_{k}": v for k, v in _final_eval(model, ds, val_rows, config, device).items()
        }
    return final | {f"last_{k}": last[k] for k in ("total", "policy", "value") if k in last}


def _final_eval(
    model: nn.Module, ds: Dataset, rows: np.ndarray, config: TrainConfig, device: torch.device
) -> dict[str, float]:
    return evaluate_losses(
        model,
        ds,
        eval_subset(rows, config.seed),
        batch_size=max(config.batch_size, 256),
        value_weight=config.value_weight,
        device=device,
    )

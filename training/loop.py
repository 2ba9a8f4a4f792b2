"""The training loop: one dataset in, one model out, resumable from its checkpoints.

``train(config, dataset_path, out_model_path, board=..., checkpoint_dir=...)`` reads a dataset
written by ``ringrift.dataset.write_dataset`` and fits a ``PolicyValueNet`` to it:

- **data**: whole games are held out for validation (``validation_fraction`` of the game ids,
  chosen by the seed), so no position of a validation game, nor any symmetric copy of one, is
  trained on. Batches come from a seeded permutation of the training rows per epoch; batch
  ``k`` of the run is a pure function of ``(seed, k)``, so the data position after a resume is
  just the step. A dataset with fewer training rows than one batch is refused.
- **loss**: policy = cross entropy of the soft search target against the log-softmax over the
  legal actions (``masked_log_softmax``), summed over the target's entries only, so an illegal
  action's ``-inf`` never meets a zero target; value = mean squared error over the seat slots
  present in the game (``value_mask``); total = policy + ``value_weight`` * value. On CUDA the
  forward pass runs under bf16 autocast (losses are still computed in float32); on the CPU
  everything is float32.
- **optimiser**: AdamW (decay on conv and linear weights only: decaying BatchNorm scales and
  biases only fights the normalisation), gradient-norm clipping, ``schedule.get_lr``.
- **weight average**: with ``ema_decay > 0`` a moving average of the weights
  (``training.ema.ModelEma``) follows every step; it is checkpointed, validated and saved as
  the final model in place of the raw weights.
- **validation and early stopping**: with ``validation_every > 0`` the validation loss (of the
  model that would be saved) is measured every that many steps; with ``early_stop_patience``
  the run stops, checkpointing that step, once that many checks in a row found no new best.
  The count and the best so far live in the checkpoint, so a resume stops where a whole run
  would, and re-running a stopped run trains no more.
- **checkpoints**: every ``checkpoint_every`` steps and at the last step, atomically; a run
  started with checkpoints in its folder continues from the newest readable one (model,
  optimiser, RNG, step), so a killed worker loses at most one interval.
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

import contextlib
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

from ringrift.ai.encoding import ENCODER_VERSION
from ringrift.ai.network import PolicyValueNet, load_model, masked_log_softmax, save_model
from ringrift.dataset import Dataset, load_dataset
from ringrift.game.boards import BoardType
from training.checkpoint import (
    Checkpoint,
    capture_rng_states,
    latest_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from training.config import TrainConfig
from training.ema import ModelEma
from training.schedule import get_lr

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, dict[str, float]], None]

# Samples the end-of-run evaluation looks at, per split: enough for a stable number, few
# enough that the final pass costs a small fraction of a run.
EVAL_SAMPLES = 2048
# Settings a resumed run may change; anything else must match the checkpoint's config.
RESUMABLE_CHANGES = frozenset({"steps", "device", "checkpoint_every", "keep_checkpoints"})


class TrainingError(ValueError):
    """Training refused or stopped: too little data, an incompatible resume, a diverged loss."""


@dataclass(frozen=True)
class TrainResult:
    steps: int  # the run's final step count (including steps before a resume)
    final_losses: dict[str, float]
    samples_seen: int  # training rows consumed over the whole run
    resumed_from_step: int | None  # the checkpoint step this call continued from
    model_path: Path
    train_samples: int
    validation_samples: int
    seconds: float  # wall time of this call
    steps_this_call: int = 0
    loop_seconds: float = 0.0  # of which in optimiser steps (and their checkpoints)
    metadata: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False  # stopped by early_stop_patience before config.steps
    best_val_loss: float | None = None  # best total validation loss of the periodic checks

    @property
    def steps_per_s(self) -> float:
        """Optimiser steps per second of this call, loading and final evaluation excluded."""
        return self.steps_this_call / self.loop_seconds if self.loop_seconds > 0 else 0.0


@dataclass
class EarlyStopping:
    """Validation-loss bookkeeping: the best loss so far and the checks since it was reached.

    ``update(loss)`` records one check and says whether to stop: ``patience`` checks in a row
    without a new best (strictly lower; a NaN is never a best). ``patience`` 0 never stops.
    """

    patience: int
    best: float | None = None
    bad_checks: int = 0

    def update(self, loss: float) -> bool:
        if self.best is None or loss < self.best:
            self.best, self.bad_checks = loss, 0
        else:
            self.bad_checks += 1
        return 0 < self.patience <= self.bad_checks


# ---------------------------------------------------------------------------------------------
# Data


def split_by_game(
    game_index: np.ndarray, num_games: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, validation)``, holding out whole games.

    ``round(fraction * num_games)`` games are held out, at least one when ``fraction > 0`` and
    there are two games or more, and never all of them.
    """
    held = 0
    if fraction > 0 and num_games >= 2:
        held = min(max(1, round(fraction * num_games)), num_games - 1)
    rng = np.random.default_rng([seed, 0x5EED])
    is_val = np.zeros(num_games, dtype=bool)
    is_val[rng.permutation(num_games)[:held]] = True
    rows_val = is_val[np.asarray(game_index)]
    return np.flatnonzero(~rows_val), np.flatnonzero(rows_val)


class BatchOrder:
    """Batch ``k`` of a run: epoch ``k // per_epoch`` is a seeded permutation of the rows.

    The tail of each epoch that does not fill a batch is skipped (it is a different tail next
    epoch). Being a pure function of the step, it needs no state in a checkpoint.
    """

    def __init__(self, rows: np.ndarray, batch_size: int, seed: int) -> None:
        if len(rows) < batch_size:
            raise TrainingError(f"{len(rows)} rows cannot fill a batch of {batch_size}")
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = len(rows) // batch_size
        self._epoch = -1
        self._perm = rows

    def indices(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.rows)
            self._epoch = epoch
        return self._perm[k * self.batch_size : (k + 1) * self.batch_size]


def _csr_rows(offset: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR ``offset`` and selected ``rows``: (batch row of each entry, entry position)."""
    starts = np.asarray(offset[rows], dtype=np.int64)
    lens = np.asarray(offset[rows + 1], dtype=np.int64) - starts
    batch_row = np.repeat(np.arange(len(rows)), lens)
    first = np.cumsum(lens) - lens  # where each row's entries begin in the output
    pos = np.arange(int(lens.sum())) - np.repeat(first, lens) + np.repeat(starts, lens)
    return batch_row, pos


@dataclass(frozen=True)
class Batch:
    planes: torch.Tensor  # float32 (B, C, S, S)
    globals: torch.Tensor  # float32 (B, G)
    legal: torch.Tensor  # bool (B, A)
    policy_row: torch.Tensor  # int64 (P,): batch row of each policy entry
    policy_action: torch.Tensor  # int64 (P,)
    policy_prob: torch.Tensor  # float32 (P,)
    value: torch.Tensor  # float32 (B, 4)
    value_mask: torch.Tensor  # float32 (B, 4)


def make_batch(ds: Dataset, rows: np.ndarray, device: torch.device) -> Batch:
    """Gather ``rows`` of ``ds`` into tensors on ``device``."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))  # ascending reads from the memory map
    b = len(rows)
    legal = np.zeros((b, ds.action_size), dtype=np.bool_)
    l_row, l_pos = _csr_rows(ds.legal_offset, rows)
    legal[l_row, ds.legal_index[l_pos]] = True
    p_row, p_pos = _csr_rows(ds.policy_offset, rows)

    def put(a: np.ndarray, dtype: Any = None) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(device, non_blocking=True)

    return Batch(
        planes=put(ds.planes[rows], np.float32),
        globals=put(ds.globals[rows], np.float32),
        legal=put(legal),
        policy_row=put(p_row, np.int64),
        policy_action=put(ds.policy_index[p_pos], np.int64),
        policy_prob=put(ds.policy_prob[p_pos], np.float32),
        value=put(ds.value[rows], np.float32),
        value_mask=put(ds.value_mask[rows], np.float32),
    )


# ---------------------------------------------------------------------------------------------
# Losses


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the forward pass on ``device``: bf16 on CUDA, None (float32) else."""
    return torch.bfloat16 if device.type == "cuda" else None


def _forward_context(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compute_losses(
    model: nn.Module, batch: Batch, value_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, policy, value)`` losses of ``model`` on ``batch`` (means over the batch).

    The forward pass runs under ``autocast_dtype`` of the batch's device; the losses are float32.
    """
    with _forward_context(batch.planes.device):
        logits, values = model(batch.planes, batch.globals)
    logp = masked_log_softmax(logits.float(), batch.legal)
    picked = logp[batch.policy_row, batch.policy_action]
    # Only the target's own entries are summed; a zero-probability entry contributes 0, never
    # 0 * -inf. Export guarantees every entry is legal, so picked is finite.
    terms = torch.where(batch.policy_prob > 0, batch.policy_prob * picked, 0.0)
    policy = -terms.sum() / batch.planes.shape[0]
    mask = batch.value_mask
    value = ((values.float() - batch.value) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)
    return policy + value_weight * value, policy, value


def evaluate_losses(
    model: nn.Module,
    ds: Dataset,
    rows: np.ndarray,
    *,
    batch_size: int = 256,
    value_weight: float = 1.0,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Mean losses of ``model`` (in eval mode) over ``rows``: ``policy``, ``value``, ``total``."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    sums = {"policy": 0.0, "value": 0.0}
    value_slots = 0.0
    n = 0
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = make_batch(ds, rows[start : start + batch_size], device)
            _, policy, value = compute_losses(model, batch, value_weight)
            k = batch.planes.shape[0]
            slots = float(batch.value_mask.sum())
            sums["policy"] += float(policy) * k
            sums["value"] += float(value) * slots
            value_slots += slots
            n += k
    model.train(was_training)
    out = {
        "policy": sums["policy"] / max(n, 1),
        "value": sums["value"] / value_slots if value_slots else 0.0,
    }
    out["total"] = out["policy"] + value_weight * out["value"]
    return out


def _eval_subset(rows: np.ndarray, seed: int) -> np.ndarray:
    if len(rows) <= EVAL_SAMPLES:
        return rows
    return np.sort(np.random.default_rng([seed, 0xE7A1]).choice(rows, EVAL_SAMPLES, replace=False))


# ---------------------------------------------------------------------------------------------
# The loop


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=get_lr(0, config),
    )


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
) -> TrainResult:
    """Train on ``dataset_path`` and write the model to ``out_model_path``; see the module doc.

    ``init_model_path`` starts from a saved model (which must match ``config.arch``, ``board``
    and the encoder: ``ModelMismatchError`` otherwise); without it the weights are fresh from
    ``config.seed``. Checkpoints already in ``checkpoint_dir`` are resumed from. ``meta`` adds
    keys to the saved model's metadata. ``guard`` is called before every checkpoint and before
    the final model is written; it raises to stop a holder that may no longer write (a lost
    lease).
    """
    started = time.perf_counter()
    board = BoardType(board)
    device = torch.device(config.device)
    checkpoint_dir = Path(checkpoint_dir)
    out_model_path = Path(out_model_path)
    if progress_every < 1:
        raise ValueError(f"progress_every must be positive, got {progress_every}")

    ds = load_dataset(dataset_path, expect_encoder_version=ENCODER_VERSION, expect_board=board)
    if len(ds) == 0:
        raise TrainingError(f"{dataset_path}: the dataset is empty; refusing to train on nothing")
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
    ckpt = latest_checkpoint(checkpoint_dir)
    if ckpt is not None:
        _check_resume(ckpt, config, identity, board)

    torch.manual_seed(config.seed)
    if ckpt is None and init_model_path is not None:
        model = load_model(init_model_path, board, config.arch)
    else:
        model = PolicyValueNet(board, config.arch)
    model.to(device).train()
    optimizer = _optimizer(model, config)
    ema = ModelEma(model, config.ema_decay) if config.ema_decay > 0 else None
    start_step = 0
    stopper = EarlyStopping(config.early_stop_patience)
    stopped_early = False
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
        log.info("resuming from %s at step %d of %d", ckpt.path, start_step, config.steps)
        if stopped_early:
            log.info("%s: the run stopped early at step %d; training no more", ckpt.path, ckpt.step)
    (checkpoint_dir / "config.json").write_text(config.to_json() + "\n")
    eval_model = ema.module if ema is not None else model  # the model that will be saved
    validate = config.validation_every > 0 and len(val_rows) > 0
    if config.validation_every > 0 and not len(val_rows):
        log.warning("no validation games held out: validation_every and early stopping are off")

    order = BatchOrder(train_rows, config.batch_size, config.seed)
    loop_started = time.perf_counter()
    window = torch.zeros(3, device=device)  # summed (total, policy, value) since last report
    window_steps = 0
    window_started = loop_started
    last: dict[str, float] = {}
    end_step = start_step

    def report(done: int) -> dict[str, float]:
        nonlocal window, window_steps, window_started
        total, policy, value = (window / max(window_steps, 1)).tolist()
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

    purge = start_step + 1 if ckpt is not None else None  # events past the checkpoint
    with _summary_writer(checkpoint_dir, purge) as writer:
        for step in range(start_step, config.steps if not stopped_early else start_step):
            lr = get_lr(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = make_batch(ds, order.indices(step), device)
            total, policy, value = compute_losses(model, batch, config.value_weight)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(model, step)
            window += torch.stack([total.detach(), policy.detach(), value.detach()])
            window_steps += 1

            done = end_step = step + 1
            if validate and done % config.validation_every == 0:
                val = _final_eval(eval_model, ds, val_rows, config, device)
                for k, v in val.items():
                    writer.add_scalar(f"val/{k}", v, done)
                if stopper.update(val["total"]) and done < config.steps:
                    stopped_early = True
                    log.info(
                        "stopping early at step %d: validation loss %.4f, best %.4f, "
                        "%d checks without improvement",
                        done,
                        val["total"],
                        stopper.best,
                        stopper.bad_checks,
                    )
            at_checkpoint = (
                done % config.checkpoint_every == 0 or done == config.steps or stopped_early
            )
            if at_checkpoint or done % progress_every == 0:
                last = report(done)  # also refuses to checkpoint a diverged model
                for k in ("total", "policy", "value"):
                    writer.add_scalar(f"train/{k}", last[k], done)
                writer.add_scalar("train/lr", last["lr"], done)
                writer.add_scalar("train/samples_per_s", last["samples_per_s"], done)
                if at_checkpoint:
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
                        },
                        capture_rng_states(),
                        config,
                        {"step": done, "epoch": done // order.per_epoch, "dataset": identity},
                        ema_state=ema.state_dict() if ema is not None else None,
                    )
                    writer.flush()
                if progress is not None:
                    progress(done, config.steps, last)
            if stopped_early:
                break

        trained_s = time.perf_counter() - loop_started
        log.info(
            "trained steps %d..%d in %.1f s (%.2f steps/s)",
            start_step,
            end_step,
            trained_s,
            (end_step - start_step) / trained_s if trained_s > 0 else 0.0,
        )
        final = {
            f"train_{k}": v
            for k, v in _final_eval(eval_model, ds, train_rows, config, device).items()
        }
        if len(val_rows):
            final |= {
                f"val_{k}": v
                for k, v in _final_eval(eval_model, ds, val_rows, config, device).items()
            }
        final |= {f"last_{k}": last[k] for k in ("total", "policy", "value") if k in last}
        for k, v in final.items():
            writer.add_scalar(f"final/{k}", v, end_step)

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
    if guard is not None:
        guard()
    save_model(out_model_path, eval_model, model_meta)
    elapsed = time.perf_counter() - started
    return TrainResult(
        steps=end_step,
        final_losses=final,
        samples_seen=end_step * config.batch_size,
        resumed_from_step=ckpt.step if ckpt is not None else None,
        model_path=out_model_path,
        train_samples=int(len(train_rows)),
        validation_samples=int(len(val_rows)),
        seconds=elapsed,
        steps_this_call=end_step - start_step,
        loop_seconds=trained_s,
        metadata=model_meta,
        stopped_early=stopped_early,
        best_val_loss=stopper.best,
    )


def _summary_writer(checkpoint_dir: Path, purge_step: int | None) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``<checkpoint_dir>/tensorboard``.

    A resumed run purges the events its previous attempt logged past the checkpoint it resumes
    from, so each step is shown once.
    """
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when training

    return SummaryWriter(log_dir=str(checkpoint_dir / "tensorboard"), purge_step=purge_step)


def _final_eval(
    model: nn.Module, ds: Dataset, rows: np.ndarray, config: TrainConfig, device: torch.device
) -> dict[str, float]:
    return evaluate_losses(
        model,
        ds,
        _eval_subset(rows, config.seed),
        batch_size=max(config.batch_size, 256),
        value_weight=config.value_weight,
        device=device,
    )

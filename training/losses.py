"""Losses: the policy cross entropy against the soft search target over legal actions, the
value error over the seats in the game, and their mean over a set of rows.

On CUDA the forward pass runs under bf16 autocast and the losses are still computed in float32;
on the CPU everything is float32.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn

from ringrift.ai.dataset import Dataset
from ringrift.ai.network import masked_log_softmax
from training.data import Batch, make_batch

# Samples the end-of-run evaluation looks at, per split: enough for a stable number, few
# enough that the final pass costs a small fraction of a run.
EVAL_SAMPLES = 2048


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


def eval_subset(rows: np.ndarray, seed: int) -> np.ndarray:
    if len(rows) <= EVAL_SAMPLES:
        return rows
    return np.sort(np.random.default_rng([seed, 0xE7A1]).choice(rows, EVAL_SAMPLES, replace=False))

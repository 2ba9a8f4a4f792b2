"""Optimisation: AdamW with weight decay on conv and linear weights only, the learning rate of
each step from ``training.schedule`` (warm-up, then cosine), and gradient-norm clipping.

Decaying BatchNorm scales and biases only fights the normalisation, so they are left undecayed.
"""

from __future__ import annotations

import torch
from torch import nn

from training.config import TrainConfig
from training.schedule import get_lr


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=get_lr(0, config),
    )


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    step: int,
    config: TrainConfig,
) -> float:
    """One optimiser step on ``loss`` at the learning rate of ``step``; returns that rate."""
    lr = get_lr(step, config)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return lr

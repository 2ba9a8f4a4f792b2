"""An exponential moving average of a model's weights, kept beside the model being trained.

``ModelEma(model, decay)`` holds a copy of ``model``; ``update(model, step)`` moves every
floating-point parameter of the copy towards the model's, ``ema = d * ema + (1 - d) * param``,
and copies the buffers (BatchNorm running statistics and counters) as they are: averaging
running statistics of statistics buys nothing, and the copy must stay a usable model.

The decay used at optimiser step ``step`` (0-based) is ``min(decay, (1 + step) / (10 + step))``,
so that early in a run the average is not dominated by the initial weights; it is a pure
function of the step, so a resumed run needs only the averaged weights from its checkpoint.
"""

from __future__ import annotations

import copy
from typing import Generic, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def ema_decay_at(decay: float, step: int) -> float:
    """The decay applied by the update after optimiser step ``step`` (0-based)."""
    return min(decay, (1.0 + step) / (10.0 + step))


class ModelEma(Generic[M]):
    def __init__(self, model: M, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.module: M = copy.deepcopy(model)
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = ema_decay_at(self.decay, step)
        ema_params: list[torch.Tensor] = [
            p for p in self.module.parameters() if p.is_floating_point()
        ]
        params: list[torch.Tensor] = [
            p.detach() for p in model.parameters() if p.is_floating_point()
        ]
        if ema_params:
            torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for e, b in zip(self.module.buffers(), model.buffers(), strict=True):
            e.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

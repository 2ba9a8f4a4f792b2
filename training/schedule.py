"""The learning-rate schedule: a pure function of the step, so a resumed run needs no state.

Linear warm-up over ``warmup_steps`` (Adam's moment estimates are poor for the first steps and a
full learning rate then can push BatchNorm statistics and weights far from anywhere useful),
then cosine decay from ``lr`` to ``MIN_LR_FRACTION * lr`` at the last step.
"""

from __future__ import annotations

import math

from training.config import TrainConfig

MIN_LR_FRACTION = 0.1


def get_lr(step: int, config: TrainConfig) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of a ``config.steps``-step run."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    peak = config.lr
    warmup = min(config.warmup_steps, config.steps)
    if step < warmup:
        return peak * (step + 1) / warmup
    floor = peak * MIN_LR_FRACTION
    decay = config.steps - warmup  # steps on the cosine, the first at peak, the last at floor
    if decay <= 1:
        return peak
    progress = min(step - warmup, decay - 1) / (decay - 1)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)

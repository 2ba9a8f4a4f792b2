"""Shared by the training tests: a fast config (their fixtures live in conftest.py)."""

from __future__ import annotations

from training.config import TrainConfig

# Small shapes keep the files to a few seconds on two cores; b4c64 (the tiny preset) is
# exercised by `ringrift bench train` and the pipeline tests.
FAST = TrainConfig.tiny().replace(arch="b1c16", batch_size=32, checkpoint_every=10)

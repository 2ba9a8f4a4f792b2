"""Training hyperparameters: one frozen dataclass, written beside every run and into the model.

Every number the training loop uses comes from a ``TrainConfig``; there is no second place
that sets a learning rate or a batch size. ``to_json``/``from_json`` round-trip it exactly and
refuse unknown keys (a misspelt key is an error, not a silently ignored setting); keys missing
from an older file take the field defaults.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ringrift.ai.network import DEFAULT, TINY, parse_arch


class ConfigError(ValueError):
    """A training configuration that is malformed or out of range."""


@dataclass(frozen=True)
class TrainConfig:
    arch: str = DEFAULT  # network shape, b<blocks>c<channels>
    steps: int = 20_000  # optimiser steps in the whole run
    batch_size: int = 256
    lr: float = 2e-3  # peak learning rate, reached after the warm-up
    weight_decay: float = 1e-4  # AdamW decay on conv and linear weights (not biases or BN)
    warmup_steps: int = 500  # linear warm-up from lr / warmup_steps to lr
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    value_weight: float = 1.0  # total loss = policy loss + value_weight * value loss
    checkpoint_every: int = 500  # steps between checkpoints (and at the last step)
    keep_checkpoints: int = 3  # newest checkpoints kept on disk
    validation_fraction: float = 0.05  # share of games (not samples) held out
    seed: int = 0  # initial weights, validation split and batch order
    ema_decay: float = 0.0  # moving average of the weights, saved as the model; 0 = off
    validation_every: int = 0  # steps between validation-loss checks; 0 = only at the end
    early_stop_patience: int = 0  # checks without a new best before stopping; 0 = never stop
    recency_weight: float = 0.0  # the oldest game is drawn exp(-this) as often as the newest
    # a random board symmetry per sample, drawn from (seed, step); needs a dataset exported
    # without augmentation (with its symmetry maps), and refuses an augmented one
    augment: bool = False
    device: str = "cpu"  # torch device string; the worker sets its own GPU

    def __post_init__(self) -> None:
        types: dict[str, tuple[type, ...]] = {
            "str": (str,),
            "int": (int,),
            "float": (int, float),
            "bool": (bool,),
        }
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = str(f.type)
            if (isinstance(value, bool) and kind != "bool") or not isinstance(value, types[kind]):
                raise ConfigError(f"TrainConfig.{f.name} must be {f.type}, got {value!r}")
        try:
            parse_arch(self.arch)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        checks = {
            "steps": self.steps >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup_steps": self.warmup_steps >= 0,
            "grad_clip": self.grad_clip >= 0,
            "value_weight": self.value_weight >= 0,
            "checkpoint_every": self.checkpoint_every >= 1,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "validation_fraction": 0 <= self.validation_fraction < 1,
            "ema_decay": 0 <= self.ema_decay < 1,
            "validation_every": self.validation_every >= 0,
            "early_stop_patience": self.early_stop_patience >= 0,
            "recency_weight": 0 <= self.recency_weight <= 50,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"TrainConfig.{name} out of range: {getattr(self, name)!r}")
        if self.early_stop_patience > 0 and self.validation_every == 0:
            raise ConfigError("TrainConfig.early_stop_patience needs validation_every > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a training config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"training config is not JSON: {e}") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def tiny(cls) -> TrainConfig:
        """Small and quick on a CPU: tests, smoke runs, the quick start (b4c64, 60 steps)."""
        return cls(
            arch=TINY,
            steps=60,
            batch_size=64,
            lr=2e-3,
            weight_decay=1e-4,
            warmup_steps=5,
            grad_clip=1.0,
            value_weight=1.0,
            checkpoint_every=20,
            keep_checkpoints=2,
            validation_fraction=0.1,
            seed=0,
            device="cpu",
            ema_decay=0.0,
            validation_every=0,
            early_stop_patience=0,
            recency_weight=0.0,
            augment=False,
        )

    @classmethod
    def default(cls) -> TrainConfig:
        """One generation's run on one GPU (b10c128); the training task sets ``device``.

        The field defaults, except the weight average (``ema_decay``), which is off by default
        so that a config file written before it existed still reads as what it ran with.
        """
        return cls(ema_decay=0.999)

    @classmethod
    def cpu(cls) -> TrainConfig:
        """One generation's run on one CPU core (b4c64, 300 steps of 128, under a minute):
        the ``cpu`` loop preset, which learns square8 within an hour of two cores."""
        return cls.tiny().replace(
            steps=300,
            batch_size=128,
            warmup_steps=20,
            checkpoint_every=100,
            validation_fraction=0.05,
        )


def tiny() -> TrainConfig:
    return TrainConfig.tiny()


def default() -> TrainConfig:
    return TrainConfig.default()


def cpu() -> TrainConfig:
    return TrainConfig.cpu()


PRESETS = {"tiny": tiny, "cpu": cpu, "default": default}

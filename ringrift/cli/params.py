"""Value types of the ``ringrift`` command's options: a number out of its range is a usage error
naming the option and the value (status 2) before anything starts, never a benchmark that runs
for ever, a zero-second loop or a library's traceback."""

from __future__ import annotations

import math
from typing import Any

import click

DAY = 24 * 3600.0


class Seconds(click.ParamType):
    """A finite number of seconds (or minutes) above 0 and at most ``most``."""

    name = "seconds"

    def __init__(self, most: float = DAY, unit: str = "seconds") -> None:
        self.most = most
        self.unit = unit
        self.name = unit

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and math.isfinite(value) and 0 < value <= self.most:
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of {self.unit}", param, ctx)
        if not math.isfinite(number) or not 0 < number <= self.most:
            self.fail(
                f"{value!r} {self.unit}: must be above 0 and at most {self.most:,.0f}", param, ctx
            )
        return number


def count(most: int, least: int = 1) -> click.IntRange:
    """A whole number from ``least`` to ``most``."""
    return click.IntRange(least, most)


SECONDS = Seconds()
MINUTES = Seconds(most=24 * 60, unit="minutes")
GAMES = count(1_000_000)
STEPS = count(10_000_000)
BATCH = count(65_536)
SIMS = count(100_000)
MOVES = count(100_000)
THREADS = count(1024, least=0)
PROCS = count(256)
WORKERS = count(256)
PORT = click.IntRange(1, 65_535)


class Device(click.ParamType):
    """A torch device this machine has: ``cpu``, or ``cuda`` / ``cuda:N`` where CUDA is."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        kind, _, index = text.partition(":")
        if (
            kind not in ("cpu", "cuda")
            or (index and not index.isdigit())
            or (kind == "cpu" and index)
        ):
            self.fail(f"{text!r} is not a device: cpu, cuda or cuda:N", param, ctx)
        if kind == "cuda":
            import torch

            if not torch.cuda.is_available():
                self.fail(f"{text!r}: this machine has no CUDA device", param, ctx)
            if index and int(index) >= torch.cuda.device_count():
                self.fail(
                    f"{text!r}: this machine has {torch.cuda.device_count()} CUDA devices",
                    param,
                    ctx,
                )
        return text


DEVICE = Device()
FILE = click.Path(exists=True, dir_okay=False)  # a file that is there, by its name

"""One training run from the command line: the program ``torchrun`` starts.

A worker that owns several GPUs trains one run over all of them with data-parallel training
(``training.distributed``). DDP wants one process per GPU, each told its rank and where to meet
the others, started and stopped together: that is ``torchrun``'s job, and this module is the
program it starts in each process. It parses the run's arguments, joins the process group
(``from_env``; none without ``WORLD_SIZE`` > 1, so ``python -m training.run`` is a plain
one-process run), calls ``training.loop.train`` and reports on rank 0 alone. Re-running the
same command on the same checkpoint folder continues from its newest checkpoint.

Example, two GPUs of one machine::

    torchrun --standalone --nproc-per-node 2 -m training.run \\
        --dataset data/square8.npz --out models/square8_g3.pt \\
        --checkpoints runs/square8_g3 --board square8 --preset default --device cuda --json

On the CPU (Gloo under ``torchrun``) each rank uses ``os.cpu_count() // world_size`` torch
threads; ``RINGRIFT_TORCH_THREADS`` overrides that on any device. Bad input (an unreadable
config file, a missing or foreign dataset, a refused resume) prints one line to stderr and
exits with status 2 (``torchrun`` itself then exits 1 and names the ranks that failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ringrift.game.boards import BoardType
from training.config import PRESETS, ConfigError, TrainConfig

if TYPE_CHECKING:
    from training.loop import TrainResult

PROG = "training.run"
THREADS_ENV = "RINGRIFT_TORCH_THREADS"

log = logging.getLogger(PROG)


class UsageError(ValueError):
    """Arguments or files that make the run impossible before it starts."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m {PROG}",
        description="Train one model on one dataset (under torchrun: on every rank's device).",
    )
    p.add_argument("--dataset", type=Path, required=True, help="dataset file (.npz)")
    p.add_argument("--out", type=Path, required=True, help="model file to write")
    p.add_argument("--checkpoints", type=Path, required=True, help="checkpoint folder")
    p.add_argument("--board", required=True, choices=[b.value for b in BoardType])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, default=None, help="TrainConfig JSON file")
    src.add_argument("--preset", choices=sorted(PRESETS), default="tiny", help="default: tiny")
    p.add_argument("--init-model", type=Path, default=None, help="start from this model")
    p.add_argument("--steps", type=int, default=None, help="override the config's steps")
    p.add_argument("--device", default=None, help="override the config's device (cpu, cuda)")
    p.add_argument("--json", action="store_true", help="print one JSON line with the result")
    return p


def load_config(args: argparse.Namespace) -> TrainConfig:
    """The run's config: the file or the preset, with the command line's overrides."""
    if args.config is not None:
        path: Path = args.config
        try:
            text = path.read_text()
        except OSError as e:
            raise UsageError(f"{path}: cannot read the config ({e.strerror or e})") from None
        try:
            config = TrainConfig.from_json(text)
        except ConfigError as e:
            raise UsageError(f"{path}: {e}") from None
    else:
        config = PRESETS[args.preset]()
    changes: dict[str, Any] = {}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.device is not None:
        changes["device"] = args.device
    return config.replace(**changes) if changes else config


def threads_per_rank(world_size: int, on_cpu: bool) -> int | None:
    """Torch threads for each rank: ``$RINGRIFT_TORCH_THREADS``, else on the CPU an equal share
    of the cores, else None (leave torch's default)."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise UsageError(f"{THREADS_ENV} must be a positive integer, got {raw!r}")
        return n
    if not on_cpu:
        return None
    return max(1, (os.cpu_count() or 1) // world_size)


def summary(result: TrainResult, world_size: int) -> dict[str, Any]:
    """The JSON line: what the run did, for a caller that parses stdout."""
    return {
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "samples_seen": result.samples_seen,
        "steps_per_s": round(result.steps_per_s, 3),
        "final_losses": result.final_losses,
        "world_size": world_size,
        "model": str(result.model_path) if result.model_path is not None else None,
        "seconds": round(result.seconds, 3),
        "stopped_early": result.stopped_early,
    }


def _human(result: TrainResult, world_size: int) -> str:
    resumed = (
        f", resumed from step {result.resumed_from_step}"
        if result.resumed_from_step is not None
        else ""
    )
    losses = result.final_losses
    loss = next((f" {k} {losses[k]:.4f}" for k in ("val_total", "train_total") if k in losses), "")
    return (
        f"trained {result.steps} steps{resumed} on {world_size} rank(s) in {result.seconds:.1f} s "
        f"({result.steps_per_s:.2f} steps/s);{loss} -> {result.model_path}"
    )


def _progress(step: int, total: int, losses: dict[str, float]) -> None:
    log.info(
        "step %d/%d loss %.4f (policy %.4f, value %.4f) lr %.2e, %.0f samples/s",
        step,
        total,
        losses["total"],
        losses["policy"],
        losses["value"],
        losses["lr"],
        losses["samples_per_s"],
    )


def _fail(message: str, where: str = "") -> None:
    # One write per line: the ranks share stderr, and print's separate newline interleaves.
    sys.stderr.write(f"{PROG}{where}: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args)
        if not args.dataset.is_file():
            raise UsageError(f"{args.dataset}: no such dataset file")
        if args.init_model is not None and not args.init_model.is_file():
            raise UsageError(f"{args.init_model}: no such model file")
    except (UsageError, ConfigError) as e:
        _fail(f"error: {e}")
        return 2

    import torch  # after the argument checks: a bad command fails fast

    from training.data import TrainingError
    from training.distributed import from_env, shutdown
    from training.loop import train

    try:
        on_cpu = torch.device(config.device).type == "cpu"
    except RuntimeError as e:
        _fail(f"error: device {config.device!r}: {e}")
        return 2
    try:
        threads = threads_per_rank(int(os.environ.get("WORLD_SIZE", "1")), on_cpu)
    except UsageError as e:
        _fail(f"error: {e}")
        return 2
    if threads is not None:
        torch.set_num_threads(threads)

    ctx = from_env(config.device)
    world = ctx.world_size if ctx is not None else 1
    main_rank = ctx is None or ctx.is_main
    logging.basicConfig(
        level=logging.INFO if main_rank else logging.WARNING,
        format=f"[rank {ctx.rank if ctx else 0}] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        result = train(
            config,
            args.dataset,
            args.out,
            board=args.board,
            checkpoint_dir=args.checkpoints,
            init_model_path=args.init_model,
            progress=_progress,
            dist=ctx,
        )
        if main_rank:
            if args.json:
                print(json.dumps(summary(result, world)), flush=True)
            else:
                print(_human(result, world), flush=True)
        return 0
    except (ValueError, OSError) as e:  # ConfigError, TrainingError, DatasetError, mismatches
        kind = "training refused" if isinstance(e, TrainingError) else "error"
        where = f" (rank {ctx.rank})" if ctx is not None else ""
        _fail(f"{kind}: {e}", where)
        return 2
    finally:
        shutdown(ctx)


if __name__ == "__main__":
    sys.exit(main())

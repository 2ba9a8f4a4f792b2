"""Training checkpoints: atomic files, the newest few kept, and a reader that survives corruption.

A checkpoint is one ``torch.save`` file ``ckpt_<step>.pt`` in the run's checkpoint folder,
holding everything needed to continue as if never interrupted: model weights (with the model's
contract metadata), optimiser state, scheduler state, RNG states, the training config and the
position in the data stream, and the moving average of the weights when the run keeps one
(``ema``, absent otherwise). It is written to a temporary name, synced, and moved into place
with ``os.replace``, so a crash leaves either the old set of checkpoints or the new one.

Files are read back with ``torch.load(..., weights_only=True)``: no pickled code runs, so
everything stored is tensors or plain Python values (RNG states included, see
``capture_rng_states``). ``latest_checkpoint`` returns the newest checkpoint that reads back
whole; a newer one that does not is reported with a warning and skipped.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ringrift.atomic import atomic_file
from training.config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ringrift-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = re.compile(r"ckpt_(\d+)\.pt")
_KEYS = ("model", "optimizer", "scheduler", "rng", "config", "data_position")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used."""


# Called with (step, sha256 hex, size in bytes) once a checkpoint's bytes are final and before
# the file takes its name; raising keeps the file from going live.
CheckpointHook = Callable[[int, str, int], None]
SavedHook = Callable[[int, Path], None]
# Called with a checkpoint's path before it is resumed from; raises CheckpointError to skip it.
VerifyFn = Callable[[Path], None]
SetAsideFn = Callable[[Path, int, str], None]  # (file, step, why it is unusable)


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    model_state: dict[str, torch.Tensor]
    model_meta: dict[str, Any]
    optimizer_state: dict[str, Any]
    scheduler_state: dict[str, Any]
    rng_states: dict[str, Any]
    config: dict[str, Any]
    data_position: dict[str, Any]
    ema_state: dict[str, torch.Tensor] | None = None  # the averaged weights, if the run keeps them


def checkpoint_path(directory: str | os.PathLike[str], step: int) -> Path:
    return Path(directory) / f"ckpt_{step:08d}.pt"


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint file in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = CHECKPOINT_NAME.fullmatch(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def capture_rng_states() -> dict[str, Any]:
    """Torch (CPU and CUDA), NumPy-global and Python RNG states as tensors and plain values."""
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    py_version, py_state, py_gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss_next": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of ``capture_rng_states``; CUDA states are restored only where CUDA is in use."""
    torch.set_rng_state(states["torch"])
    npst = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npst["keys"].numpy().astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["cached_gaussian"]),
        )
    )
    py = states["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    cuda = states.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(
    directory: str | os.PathLike[str],
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler_state: dict[str, Any],
    rng_states: dict[str, Any],
    config: TrainConfig,
    data_position: dict[str, Any],
    ema_state: dict[str, torch.Tensor] | None = None,
    on_written: CheckpointHook | None = None,
    on_saved: SavedHook | None = None,
) -> Path:
    """Write ``ckpt_<step>.pt`` atomically, then keep only the newest ``keep_checkpoints``.

    ``on_written(step, sha256, size)`` is called with the finished bytes' checksum before the
    file is written under its name, so a record of it (the ledger's) exists before the file
    can be resumed from; if it raises, nothing is written. ``on_saved(step, path)`` is called
    once the file is in place (to copy it where other hosts can find it).

    Checkpoints of later steps than ``step`` are removed too: a run writes steps in order, so a
    later one can only be one that a resumed run fell back from (unreadable). So are temporary
    files of writers killed mid-write (one run writes a folder at a time: the training lease).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, step)
    metadata = getattr(model, "metadata", None)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_meta": metadata() if callable(metadata) else {},
        "optimizer": optimizer.state_dict(),
        "scheduler": dict(scheduler_state),
        "rng": rng_states,
        "config": config.to_dict(),
        "data_position": dict(data_position),
    }
    if ema_state is not None:
        payload["ema"] = {k: v.detach().cpu() for k, v in ema_state.items()}
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getbuffer()
    if on_written is not None:
        on_written(int(step), hashlib.sha256(data).hexdigest(), len(data))
    with atomic_file(path) as f:
        f.write(data)
    _fsync_dir(directory)
    if on_saved is not None:
        on_saved(int(step), path)

    existing = list_checkpoints(directory)
    older = [(s, p) for s, p in existing if s <= step]
    doomed = [p for s, p in existing if s > step] + [
        p for _, p in older[: -config.keep_checkpoints]
    ]
    doomed += directory.glob(".ckpt_*.tmp")  # left by a writer killed mid-write
    for p in doomed:
        p.unlink(missing_ok=True)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read one checkpoint; ``CheckpointError`` naming the file if it is unreadable or foreign."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # torch raises many kinds on a truncated or garbled file
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a ringrift checkpoint")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {data.get('version')!r} unsupported")
    missing = [k for k in _KEYS if not isinstance(data.get(k), dict)]
    if missing or not isinstance(data.get("step"), int):
        raise CheckpointError(f"{path}: incomplete checkpoint (missing {missing or ['step']})")
    ema = data.get("ema")
    if ema is not None and not isinstance(ema, dict):
        raise CheckpointError(f"{path}: malformed averaged weights")
    return Checkpoint(
        path=path,
        step=data["step"],
        model_state=data["model"],
        model_meta=data.get("model_meta") or {},
        optimizer_state=data["optimizer"],
        scheduler_state=data["scheduler"],
        rng_states=data["rng"],
        config=data["config"],
        data_position=data["data_position"],
        ema_state=ema,
    )


def latest_checkpoint(
    directory: str | os.PathLike[str],
    verify: VerifyFn | None = None,
    set_aside: SetAsideFn | None = None,
) -> Checkpoint | None:
    """The newest checkpoint in ``directory`` that reads back whole, or None if there is none.

    An unreadable newer checkpoint, or one that ``verify`` rejects (a checksum that does not
    match the record), is skipped with a warning (the run then loses one more interval, never
    the whole run) and handed to ``set_aside``, which moves it out of the folder and records
    why; if none is usable, an error is logged and None returned.
    """
    found = list_checkpoints(directory)
    for step, path in reversed(found):
        try:
            if verify is not None:
                verify(path)
            ckpt = load_checkpoint(path)
        except (CheckpointError, OSError) as e:
            log.warning("checkpoint %s (step %d) is unusable, falling back: %s", path, step, e)
            if set_aside is not None:
                set_aside(path, step, str(e))
            continue
        if ckpt.step != step:
            log.warning(
                "checkpoint %s says step %d, its name %d; falling back", path, ckpt.step, step
            )
            if set_aside is not None:
                set_aside(path, step, f"{path}: the file says step {ckpt.step}, its name {step}")
            continue
        return ckpt
    if found:
        log.error("no readable checkpoint among %d in %s; starting afresh", len(found), directory)
    return None

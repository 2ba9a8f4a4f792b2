"""A training run's ledger rows, and who may write them.

Every write a training task makes is conditioned on the run's ``lease_token`` being the
writer's own (``ringrift.pipeline.lease``): a worker whose lease lapsed (it stalled, or lost its
connection) and was replaced finds its ``UPDATE`` matching no row and stops, whatever it
believes. People act on a run through ``request_cancel`` and ``resume``, which the running task
sees at its next progress report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from ringrift.errors import ServiceError
from ringrift.pipeline.lease import LeaseLost
from ringrift.store.artifacts import sha256_file
from ringrift.store.models import Checkpoint, TrainingRun, utcnow
from training.checkpoint import CheckpointError

LIVE = ("pending", "running")


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _mine(run_id: str, token: int) -> Any:
    return (TrainingRun.id == run_id) & (TrainingRun.lease_token == token)


def claim(s: Session, run_id: str, token: int) -> bool:
    """Record ``token`` as the run's writer unless a newer lease already did."""
    stmt = (
        update(TrainingRun)
        .where(
            TrainingRun.id == run_id,
            or_(TrainingRun.lease_token.is_(None), TrainingRun.lease_token < token),
        )
        .values(lease_token=token, status="running", updated_at=utcnow())
    )
    return bool(_rowcount(s.execute(stmt)))


def finish(s: Session, run_id: str, token: int, model_id: str, steps: int, loss: float) -> bool:
    """Mark the run done, if ``token`` is still the run's writer."""
    stmt = (
        update(TrainingRun)
        .where(_mine(run_id, token))
        .values(
            status="done",
            result_model_id=model_id,
            step=steps,
            last_loss=loss,
            eta_s=0.0,
            updated_at=utcnow(),
        )
    )
    return _rowcount(s.execute(stmt)) == 1


def report(
    s: Session, run_id: str, token: int, step: int, total: int, losses: dict[str, float]
) -> bool:
    """Write progress (step, loss, rate, ETA); returns whether a cancel was requested.

    Raises ``LeaseLost`` when ``token`` is no longer the run's writer.
    """
    stmt = (
        update(TrainingRun)
        .where(_mine(run_id, token))
        .values(
            step=step,
            total_steps=total,
            last_loss=float(losses["total"]),
            samples_per_s=float(losses.get("samples_per_s", 0.0)),
            eta_s=float(losses.get("eta_s", 0.0)),
            updated_at=utcnow(),
        )
    )
    if _rowcount(s.execute(stmt)) != 1:
        raise LeaseLost(f"{run_id}: token {token} is stale; a newer lease owns the run")
    return bool(s.scalar(select(TrainingRun.cancel_requested).where(TrainingRun.id == run_id)))


def record_checkpoint(
    s: Session, run_id: str, token: int, step: int, path: str, sha256: str, size: int
) -> None:
    """Record a checkpoint's checksum before its file goes live; ``LeaseLost`` if stale."""
    touched = s.execute(update(TrainingRun).where(_mine(run_id, token)).values(updated_at=utcnow()))
    if _rowcount(touched) != 1:
        raise LeaseLost(f"{run_id}: token {token} is stale; not writing checkpoint {step}")
    s.execute(delete(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step))
    s.add(
        Checkpoint(run_id=run_id, step=step, path=path, sha256=sha256, size=size, lease_token=token)
    )


def newest_checkpoint(s: Session, run_id: str) -> Checkpoint | None:
    """The run's checkpoint record of the highest step, if any."""
    return s.scalars(
        select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.step.desc())
    ).first()


def verify_checkpoint(s: Session, run_id: str, path: Path, step: int) -> None:
    """Raise ``CheckpointError`` unless ``path`` is the file the ledger recorded for ``step``."""
    row = s.get(Checkpoint, (run_id, step))
    if row is None:
        raise CheckpointError(f"{path}: no checkpoint of step {step} is recorded for {run_id}")
    size = path.stat().st_size
    if size != row.size:
        raise CheckpointError(f"{path}: {size} bytes, the ledger recorded {row.size}")
    digest = sha256_file(path)
    if digest != row.sha256:
        raise CheckpointError(
            f"{path}: sha256 {digest[:12]}, the ledger recorded {row.sha256[:12]}"
        )


def hand_off(s: Session, run_id: str, token: int, segment: int, step: int) -> bool:
    """Move the run to segment ``segment + 1``: only its messages may train it from now on."""
    stmt = (
        update(TrainingRun)
        .where(_mine(run_id, token), TrainingRun.segment == segment)
        .values(segment=segment + 1, step=step, updated_at=utcnow())
    )
    return _rowcount(s.execute(stmt)) == 1


def mark(s: Session, run_id: str, token: int, status: str, error: str | None = None) -> bool:
    """Set a run's status (``cancelled`` or ``failed``) if ``token`` is still its writer."""
    stmt = (
        update(TrainingRun)
        .where(_mine(run_id, token))
        .values(status=status, error=error, eta_s=None, updated_at=utcnow())
    )
    return _rowcount(s.execute(stmt)) == 1


def request_cancel(s: Session, run_id: str) -> TrainingRun:
    """Ask a run to stop: the running task checkpoints and stops at its next progress report;
    a run that is not running is cancelled by the next delivery, or at once if none is due."""
    run = _get(s, run_id)
    if run.status not in LIVE:
        raise ServiceError(f"{run_id} is {run.status}; only a pending or running run can stop")
    run.cancel_requested = True
    return run


def resume(s: Session, run_id: str) -> TrainingRun:
    """Let a cancelled or failed run train again, from its newest checkpoint; the pipeline's
    next tick starts it."""
    run = _get(s, run_id)
    if run.status not in ("cancelled", "failed"):
        raise ServiceError(f"{run_id} is {run.status}; only a cancelled or failed run resumes")
    run.status, run.cancel_requested, run.error = "pending", False, None
    return run


def _get(s: Session, run_id: str) -> TrainingRun:
    if not isinstance(run_id, str) or not 0 < len(run_id) <= 200:  # the ledger's ids are shorter
        raise ServiceError(f"training run ids are 1 to 200 characters, not {run_id!r}")
    run = s.get(TrainingRun, run_id)
    if run is None:
        raise ServiceError(f"training run {run_id!r} is not in the ledger")
    return run

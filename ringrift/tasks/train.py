"""``ringrift.train.train_model``: train the candidate of one iteration from its dataset,
starting from the current best model, with atomic checkpoints; a redelivered task resumes from
the newest checkpoint. Progress shows as the ``PROGRESS`` state (step, total, loss) in Flower
and on the training run row in ``ringrift status``."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, cast

from celery.utils.log import get_task_logger
from sqlalchemy import CursorResult, or_, update

from ringrift.ai.encoding import ENCODER_VERSION
from ringrift.celery import app
from ringrift.errors import ServiceError
from ringrift.lease import Lease, LeaseLost
from ringrift.pipeline import candidate_name, load_state, release
from ringrift.presets import preset
from ringrift.service import current, redis_client
from ringrift.store import record_artifact
from ringrift.store.models import Artifact, Model, TrainingRun, utcnow
from ringrift.tasks.common import model_file
from workers import runtime

log = get_task_logger(__name__)


LEASE_SECONDS = 120  # renewed at every progress report and checkpoint; a dead holder's lapses


@app.task(name="ringrift.train.train_model", bind=True)
def train_model(self: Any, run_id: str) -> dict[str, Any]:
    """Train one run under its fenced lease: a second delivery while the first still holds the
    lease stops at once, and a holder whose lease lapsed cannot write checkpoints or finish the
    run (the ledger compares its token)."""
    if not isinstance(run_id, str) or not run_id.startswith("run-"):
        raise ServiceError(f"run_id must name a training run, got {run_id!r}")
    lease = Lease(redis_client(), run_id, LEASE_SECONDS)
    if not lease.acquire():
        log.warning("%s is being trained by another delivery; not starting a second", run_id)
        return {"run_id": run_id, "skipped": "running elsewhere"}
    try:
        return _train(self, run_id, lease)
    finally:
        lease.release()


def _claim_run(s: Any, run_id: str, token: int) -> bool:
    """Record ``token`` as the run's writer unless a newer lease already did."""
    stmt = (
        update(TrainingRun)
        .where(
            TrainingRun.id == run_id,
            or_(TrainingRun.lease_token.is_(None), TrainingRun.lease_token < token),
        )
        .values(lease_token=token, status="running", updated_at=utcnow())
    )
    return bool(s.execute(stmt).rowcount)


def _finish_run(s: Any, run_id: str, token: int, model_id: str, steps: int, loss: float) -> bool:
    """Mark the run done, if ``token`` is still the run's writer."""
    stmt = (
        update(TrainingRun)
        .where(TrainingRun.id == run_id, TrainingRun.lease_token == token)
        .values(
            status="done", result_model_id=model_id, step=steps, last_loss=loss, updated_at=utcnow()
        )
    )
    return cast(CursorResult[Any], s.execute(stmt)).rowcount == 1


def _train(self: Any, run_id: str, lease: Lease) -> dict[str, Any]:
    from training.loop import train

    svc = current()
    with svc.session() as s:
        run = s.get(TrainingRun, run_id)
        if run is None:
            raise ServiceError(f"training run {run_id!r} is not in the ledger")
        if run.status == "done":
            log.info("%s already finished (redelivery): %s", run_id, run.result_model_id)
            return {"run_id": run_id, "model_id": run.result_model_id}
        st = load_state(s, run.config)
        p = preset(st.preset)
        config, generation = run.config, run.generation
        dataset = s.get(Artifact, run.dataset_artifact_id)
        if dataset is None:
            raise ServiceError(f"{run_id}: dataset {run.dataset_artifact_id} is missing")
        dataset_path = svc.cache.pull(dataset.id, dataset.path, dataset.sha256)
        init_path = None
        if run.init_model_id:
            _, init_path = model_file(svc, s, run.init_model_id)
        init_model_id = run.init_model_id
        if not _claim_run(s, run_id, lease.token):
            raise LeaseLost(f"{run_id}: a newer lease than token {lease.token} owns the run")
    cfg = dataclasses.replace(p.train_config(), arch=p.arch, device=runtime.DEVICE)
    board = config.split("_")[0]
    checkpoints = svc.store.root / "runs" / run_id

    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        lease.renew()
        loss = float(losses["total"])
        self.update_state(
            state="PROGRESS",
            meta={"run_id": run_id, "step": step, "total": total, "loss": loss, **losses},
        )
        with svc.session() as s2:
            row = s2.get(TrainingRun, run_id)
            if row is not None and row.lease_token == lease.token:
                row.step, row.total_steps, row.last_loss = step, total, loss

    name = candidate_name(config, generation)
    try:
        with tempfile.TemporaryDirectory(dir=svc.settings.data_dir) as tmp:
            out = Path(tmp) / "model.pt"
            result = train(
                cfg,
                dataset_path,
                out,
                board=board,
                init_model_path=init_path,
                checkpoint_dir=checkpoints,
                progress=progress,
                guard=lease.renew,
                generation=generation + 1,
                meta={"config": config, "run_id": run_id},
            )
            ref = svc.store.put_file("model", out, name=name, config=config)
    except ValueError as e:  # bad data or a mismatched model: a person must look
        with svc.session() as s:
            row = s.get(TrainingRun, run_id)
            if row is not None and row.lease_token == lease.token:
                row.status, row.error = "failed", f"{type(e).__name__}: {e}"
        release(redis_client(), f"{config}:{generation}:train")
        raise
    with svc.session() as s:
        record_artifact(s, ref, config)
        if s.get(Model, name) is None:
            s.add(
                Model(
                    id=name,
                    config=config,
                    generation=generation + 1,
                    architecture=cfg.arch,
                    encoder_version=ENCODER_VERSION,
                    parent_id=init_model_id,
                    training_run_id=run_id,
                    artifact_id=ref.id,
                    status="candidate",
                )
            )
            s.flush()
        if not _finish_run(
            s, run_id, lease.token, name, result.steps, float(result.final_losses["train_total"])
        ):
            # rolls the model row back with the session
            raise LeaseLost(f"{run_id}: token {lease.token} is stale; a newer lease owns the run")
    log.info(
        "%s: trained %s in %d steps (resumed from %s)",
        run_id,
        name,
        result.steps,
        result.resumed_from_step,
    )
    release(redis_client(), f"{config}:{generation}:train")
    from ringrift.tasks.pipeline import advance

    advance(config)
    return {"run_id": run_id, "model_id": name, "steps": result.steps}

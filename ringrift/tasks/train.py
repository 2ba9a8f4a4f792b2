"""``ringrift.train.train_model``: train the candidate of one iteration from its dataset,
starting from the current best model, in segments handed from one task to the next.

Why segments: the broker (Redis) hands an unacknowledged message to another worker once it has
been held longer than the visibility timeout (2 h here), and a late-acknowledged task that ran
longer would then run twice. So one delivery trains for at most ``RINGRIFT_TRAIN_SEGMENT_SECONDS``
(30 min by default; refused unless well under the timeout), checkpoints, moves the run's
``segment`` on in the ledger, sends the message for the next segment and acknowledges its own.
No message is ever held longer than one segment, and a stale copy of an old segment's message
(a redelivery, a duplicate start) finds the run's segment moved on and does nothing.

Exactly one writer: each delivery takes the run's fenced lease (``ringrift.pipeline.lease``); a
second delivery while the first holds it stops at once, and every ledger write (progress,
checkpoint records, hand-off, finish) is conditioned on the holder's token
(``ringrift.pipeline.runs``).

A dead worker (kill -9, OOM, lost connection) stops renewing its lease and the stage claim it
keeps alive; after about three lease periods the pipeline's beat tick starts the run's current
segment again, which resumes from the newest checkpoint whose checksum matches its ledger
record, so at most one checkpoint interval is lost. Cancelling is a flag
(``ringrift train cancel``) that the loop reads at every progress report: it checkpoints and
stops, and ``ringrift train resume`` continues from there.

Progress shows as the ``PROGRESS`` state (step, total, losses, samples/s, ETA) in Flower and on
the run row in ``ringrift status``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from celery.utils.log import get_task_logger

from ringrift.ai.encoding import ENCODER_VERSION
from ringrift.celery import app
from ringrift.errors import ServiceError
from ringrift.infra.service import Service, current, redis_client
from ringrift.pipeline import runs
from ringrift.pipeline.heartbeat import beating, holder
from ringrift.pipeline.lease import Lease, LeaseLost
from ringrift.pipeline.presets import Preset, preset
from ringrift.pipeline.quarantine import usable_dataset
from ringrift.pipeline.run_hooks import RunHooks
from ringrift.pipeline.state import (
    FAILED_RETRY_SECONDS,
    candidate_name,
    load_state,
    release,
    segment_task_id,
)
from ringrift.store import record_artifact
from ringrift.store.models import Artifact, Model, TrainingRun
from ringrift.tasks.common import model_file
from ringrift.tasks.ddp_train import SegmentJob, SegmentResult, launch, train_segment
from training.config import ConfigError, TrainConfig
from workers import runtime

log = get_task_logger(__name__)

# A segment must end, checkpoint and hand off well before the broker would redeliver it.
SEGMENT_SHARE_OF_VISIBILITY = 0.5


def segment_budget(svc: Service) -> int:
    """Seconds one delivery may train; ``ServiceError`` if the settings would let a segment
    outlive half the broker's visibility timeout."""
    seconds = svc.settings.train_segment_seconds
    options = app.conf.broker_transport_options or {}
    visibility = float(options.get("visibility_timeout", 3600))  # kombu's Redis default
    if seconds > SEGMENT_SHARE_OF_VISIBILITY * visibility:
        raise ServiceError(
            f"RINGRIFT_TRAIN_SEGMENT_SECONDS={seconds} must be at most half the broker's "
            f"visibility timeout ({visibility:.0f} s), or Redis would deliver a running segment "
            "to a second worker"
        )
    return seconds


def _run_segment(
    job: SegmentJob, cfg: TrainConfig, hooks: RunHooks, ranks: int, work: Path
) -> SegmentResult:
    """Train one segment here, or on ``ranks`` processes under torchrun (DDP)."""
    if ranks > 1:
        out = launch(job, ranks, work, keepalive=hooks.guard)
        log.info("%s: segment %d trained on %d ranks", job.run_id, job.segment, out.world_size)
        return out
    return SegmentResult.of(train_segment(job, cfg, **hooks.loop_kwargs()))


def run_config(run_id: str, frozen: str | None, p: Preset) -> TrainConfig:
    """The run's own frozen config, or (a run recorded without one) its preset's."""
    if frozen is None:
        return p.train_config()
    try:
        return TrainConfig.from_json(frozen)
    except ConfigError as e:
        raise ConfigError(f"{run_id}: the recorded training config is unusable: {e}") from None


@app.task(name="ringrift.train.train_model", bind=True)
def train_model(self: Any, run_id: str, segment: int | None = None) -> dict[str, Any]:
    """Train one segment of ``run_id`` under its fenced lease, then hand off or finish.

    ``segment`` is the run's segment this message was sent for; None (a manual start) trains
    whatever segment the run is at.
    """
    if not isinstance(run_id, str) or not run_id.startswith("run-"):
        raise ServiceError(f"run_id must name a training run, got {run_id!r}")
    if segment is not None and (
        not isinstance(segment, int) or isinstance(segment, bool) or segment < 0
    ):
        raise ServiceError(f"segment must be a non-negative integer or None, got {segment!r}")
    svc = current()
    budget = segment_budget(svc)
    with svc.session() as s:  # tokens continue above the ledger's, even if Redis lost its count
        row = s.get(TrainingRun, run_id)
        floor = int(row.lease_token or 0) if row is not None else 0
    lease = Lease(redis_client(), run_id, svc.settings.train_lease_seconds)
    if not lease.acquire(floor):
        if holder(lease.client, segment_task_id(run_id)) is None:
            # the holder stopped beating (its worker died): its lease lapses soon, then this
            # attempt takes over rather than leave the stage claimed with nobody training
            wait = max(1, int(lease.client.ttl(lease.key))) + 1
            log.warning("%s: its last trainer died; taking over in %d s", run_id, wait)
            raise self.retry(countdown=wait, max_retries=5)
        log.warning("%s is being trained by another delivery; not starting a second", run_id)
        return {"run_id": run_id, "skipped": "running elsewhere"}
    try:
        # `ringrift health` tells a segment past its time budget (a hung rank) from a busy one
        beat = svc.settings.task_heartbeat_seconds
        with beating(
            redis_client(), segment_task_id(run_id), beat, svc.settings.host, FAILED_RETRY_SECONDS
        ):
            return _train(self, svc, run_id, segment, lease, budget)
    finally:
        lease.release()


def _train(
    self: Any, svc: Service, run_id: str, segment: int | None, lease: Lease, budget: int
) -> dict[str, Any]:
    from training.loop import CANCELLED, SEGMENT

    r = redis_client()
    with svc.session() as s:
        run = s.get(TrainingRun, run_id)
        if run is None:
            raise ServiceError(f"training run {run_id!r} is not in the ledger")
        if run.status in ("done", "cancelled", "failed"):  # `ringrift train resume` reopens
            log.info("%s is already %s (a late delivery): nothing to do", run_id, run.status)
            return {"run_id": run_id, "status": run.status, "model_id": run.result_model_id}
        if segment is not None and segment != run.segment:
            log.info(
                "%s: message for segment %d, the run is at %d: stale", run_id, segment, run.segment
            )
            return {"run_id": run_id, "skipped": f"stale segment {segment}"}
        segment = run.segment
        st = load_state(s, run.config)
        p = preset(st.preset, run.config)
        config, generation = run.config, run.generation
        stage_key = f"{config}:{generation}:train"
        dataset = s.get(Artifact, run.dataset_artifact_id)
        if dataset is None:
            raise ServiceError(f"{run_id}: dataset {run.dataset_artifact_id} is missing")
        init_model_id = run.init_model_id
        cancel = run.cancel_requested
        frozen = run.train_config
        if not runs.claim(s, run_id, lease.token):
            raise LeaseLost(f"{run_id}: a newer lease than token {lease.token} owns the run")
    if cancel:
        with svc.session() as s:
            runs.mark(s, run_id, lease.token, "cancelled")
        release(r, stage_key)
        log.info("%s: cancelled before segment %d started", run_id, segment)
        return {"run_id": run_id, "status": "cancelled"}
    try:
        dataset_path = usable_dataset(svc, dataset.id, f"train {run_id} on {svc.settings.host}")
    except ValueError as e:  # set aside, and it could not be rebuilt: a person must look
        with svc.session() as s:
            runs.mark(s, run_id, lease.token, "failed", f"{type(e).__name__}: {e}")
        release(r, stage_key)
        raise
    with svc.session() as s:
        init_path = model_file(svc, s, init_model_id)[1] if init_model_id else None
    hooks = RunHooks(
        svc,
        run_id,
        segment,
        lease,
        stage_key,
        claim_seconds=3 * svc.settings.train_lease_seconds,
        publish=lambda meta: self.update_state(state="PROGRESS", meta=meta),
    )
    hooks.keep_claim()  # the beat restarts the run only once this lapses
    hooks.prepare()  # a remote store: this host fetches the newest checkpoint

    name = candidate_name(config, generation)
    ranks = svc.settings.train_ranks
    try:
        cfg = run_config(run_id, frozen, p).replace(device=runtime.DEVICE)
        hooks.keep_checkpoints = cfg.keep_checkpoints
        with tempfile.TemporaryDirectory(dir=svc.settings.data_dir) as tmp:
            out = Path(tmp) / "model.pt"
            job = SegmentJob(
                run_id=run_id,
                segment=segment,
                lease_token=lease.token,
                lease_seconds=lease.seconds,
                stage_key=stage_key,
                claim_seconds=hooks.claim_seconds,
                task_id=self.request.id,
                config_json=cfg.to_json(),
                dataset_path=str(dataset_path),
                out_path=str(out),
                board=config.split("_")[0],
                init_model_path=str(init_path) if init_path else None,
                seconds=budget,
                generation=generation + 1,
                meta={"config": config, "run_id": run_id},
            )
            result = _run_segment(job, cfg, hooks, ranks, Path(tmp))
            ref = None
            if result.stopped is None:
                ref = svc.store.put_file("model", out, name=name, config=config)
    except ValueError as e:  # bad data or a mismatched model: a person must look
        with svc.session() as s:
            runs.mark(s, run_id, lease.token, "failed", f"{type(e).__name__}: {e}")
        release(r, stage_key)
        raise
    with svc.session() as s:
        row = s.get(TrainingRun, run_id)
        if row is not None and row.lease_token == lease.token:
            row.resumed_from_step = result.resumed_from_step
    if result.stopped == SEGMENT:
        return _hand_off(self, hooks, result.steps)
    if result.stopped == CANCELLED:
        with svc.session() as s:
            runs.mark(s, run_id, lease.token, "cancelled")
        release(r, stage_key)
        log.info("%s: cancelled at step %d (checkpointed)", run_id, result.steps)
        return {"run_id": run_id, "status": "cancelled", "step": result.steps}
    assert ref is not None
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
        loss = float(result.final_losses["train_total"])
        if not runs.finish(s, run_id, lease.token, name, result.steps, loss):
            # rolls the model row back with the session
            raise LeaseLost(f"{run_id}: token {lease.token} is stale; a newer lease owns the run")
    log.info(
        "%s: trained %s in %d steps (this segment resumed from %s)",
        run_id,
        name,
        result.steps,
        result.resumed_from_step,
    )
    release(r, stage_key)
    from ringrift.tasks.pipeline import hand_on

    hand_on(config)
    return {"run_id": run_id, "model_id": name, "steps": result.steps}


def _hand_off(self: Any, hooks: RunHooks, step: int) -> dict[str, Any]:
    """Move the run to its next segment in the ledger, then send that segment's message.

    In that order: if this worker dies between the two, the beat finds the run's lease and
    claim lapsed and sends the message itself; a message sent first could race a redelivery of
    this one.
    """
    run_id, segment, token = hooks.run_id, hooks.segment, hooks.lease.token
    with hooks.svc.session() as s:
        if not runs.hand_off(s, run_id, token, segment, step):
            raise LeaseLost(f"{run_id}: token {token} no longer owns segment {segment}")
    hooks.keep_claim()
    queue = (self.request.delivery_info or {}).get("routing_key") or None
    train_model.apply_async(args=(run_id, segment + 1), queue=queue)
    log.info(
        "%s: segment %d ended at step %d; handed on to segment %d",
        run_id,
        segment,
        step,
        segment + 1,
    )
    return {"run_id": run_id, "handed_off_to_segment": segment + 1, "step": step}

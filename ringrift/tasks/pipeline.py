"""``ringrift.pipeline.tick``: the beat reconciler. For every enabled configuration it reads the
ledger and starts whatever is due, which also repairs any step a lost callback never started.
``advance`` is the same thing for one configuration, called by the stage callbacks.

The public controls, for ``.delay()`` from Python (``ringrift pipeline`` does the same from the
shell): ``start_pipeline(config, preset="default", generations=None)``,
``stop_pipeline(config)`` and ``list_pipelines()``."""

from __future__ import annotations

import math
from typing import Any

import redis
from celery import chain, chord
from celery import group as group_of
from celery.utils.log import get_task_logger
from kombu.exceptions import OperationalError
from sqlalchemy import select

from ringrift.celery import app
from ringrift.infra.queues import SELFPLAY_PRIORITY, backlogs, gpu_queues, pick, queue_consumers
from ringrift.infra.service import current, redis_client
from ringrift.pipeline.heartbeat import Dispatch, record_dispatch
from ringrift.pipeline.presets import preset
from ringrift.pipeline.repairs import beat
from ringrift.pipeline.scheduler import plan, sent
from ringrift.pipeline.state import (
    MATCHES_PER_EVALUATION,
    Due,
    Limits,
    claim,
    confirm,
    disable_pipeline,
    drop,
    enable_pipeline,
    group_for,
    note_sent,
    pipeline_rows,
    reconcile,
    release,
)
from ringrift.store.models import PipelineState

log = get_task_logger(__name__)


def send_group(due: Due, group: Dispatch, seconds: int, *, record: bool = True) -> None:
    """Send ``group``'s members as a chord closing with its callback, spread over the queues;
    remembered under the stage's key first, so the reconciler can send again a member whose
    worker dies."""
    if record:
        record_dispatch(redis_client(), due.key, group, seconds)
    # matches search with networks as selfplay does: on GPU queues (any queue without one)
    queues = pick(app, len(group.members), gpu_only=True)
    header = [
        app.signature(m.task, args=tuple(m.args)).set(queue=q)
        for m, q in zip(group.members, queues, strict=True)
    ]
    cb = group.callback
    chord(group_of(header))(app.signature(cb.task, args=tuple(cb.args)).set(queue=pick(app, 1)[0]))


def start(due: Due) -> str | None:
    """Enqueue the task(s) for one claimed ``Due`` item; the task id of a one-task stage's."""
    d = due.detail
    sent_id: str | None = None
    if due.stage in ("evaluate", "check"):
        send_group(due, group_for(due), preset(d["preset"], due.config).claim_seconds)
    elif due.stage == "resend":
        send_group(
            due, Dispatch(d["stage"], d["members"], d["callback"]), d["seconds"], record=False
        )
    elif due.stage == "export":
        sent_id = app.send_task(
            "ringrift.export.build_dataset",
            args=(due.config, due.generation, d["preset"]),
            queue=pick(app, 1)[0],
        ).id
    elif due.stage == "train":
        sent_id = app.send_task(
            "ringrift.train.train_model",
            args=(d["run_id"], d["segment"]),
            queue=pick(app, 1, gpu_only=True)[0],
        ).id
    elif due.stage == "verify":
        sent_id = app.send_task(
            "ringrift.promote.verify_promotion",
            args=(due.config, due.generation, d["model_id"]),
            queue=pick(app, 1)[0],
        ).id
    elif due.stage == "decide":
        sent_id = app.send_task(
            "ringrift.promote.promote_model",
            args=(due.config, due.generation, d["candidate_id"]),
            queue=pick(app, 1)[0],
        ).id
    else:  # pragma: no cover - reconcile only makes the stages above
        raise ValueError(f"unknown stage {due.stage!r}")
    log.info("%s g%d: started %s %s", due.config, due.generation, due.stage, d)
    return sent_id


def limits() -> Limits:
    """The stage caps for the queues live now: ``RINGRIFT_MAX_TRAININGS`` trainings at once
    (default: one per GPU queue), and evaluation matches in flight on at most
    ``RINGRIFT_EVAL_SHARE`` of the GPU queues (default 0.5), never fewer than one evaluation's
    three matches."""
    settings = current().settings
    gpus = len(gpu_queues(app)) or 1
    trainings = settings.max_trainings or gpus
    eval_matches = max(MATCHES_PER_EVALUATION, math.floor(settings.eval_share * gpus))
    return Limits(trainings=trainings, eval_matches=eval_matches)


def advance(config: str) -> list[str]:
    """Start whatever is due for ``config`` now; returns the started stages.

    A stage's claim is short until its work is queued and only then lasts the preset's
    ``claim_seconds``; if sending fails, the claim is dropped at once, so no claim ever guards
    work that was never queued."""
    r = redis_client()
    started = []
    for due in reconcile(current(), r, config, limits()):
        try:
            sent = start(due)
        except BaseException:
            if due.claim is not None:
                drop(r, due.key, due.claim)
            raise
        if due.claim is not None:
            confirm(r, due.key, due.claim, due.claim_seconds)
            if sent is not None:
                note_sent(r, due.key, sent, due.claim_seconds)
        started.append(due.stage)
    return started


def hand_on(config: str) -> list[str]:
    """A finished stage task starts what is due next (``advance``), the fast path; if the broker
    is away just then, it says so and leaves it to the beat's next tick, which starts the same
    work from the ledger, rather than fail a task whose work is done and recorded."""
    try:
        return advance(config)
    except (redis.RedisError, OSError, OperationalError) as e:
        log.warning(
            "%s: the next stage is left to the beat's tick (%s: %s)", config, type(e).__name__, e
        )
        return []


@app.task(name="ringrift.pipeline.start")
def start_pipeline(
    config: str,
    preset: str = "default",
    generations: int | None = None,
    weight: float | None = None,
) -> dict[str, Any]:
    """Enable ``config``'s loop and start what is due now (the beat keeps it going)."""
    with current().session() as s:
        enable_pipeline(s, config, preset, generations, weight)
    started = advance(config)
    if feed_selfplay().get(config):
        started.append("selfplay")
    with current().session() as s:
        row = next(r for r in pipeline_rows(s) if r["config"] == config)
    return {**row, "started": started}


@app.task(name="ringrift.pipeline.stop")
def stop_pipeline(config: str) -> dict[str, Any]:
    """Start nothing more for ``config``; tasks already running finish."""
    with current().session() as s:
        disable_pipeline(s, config)
        return next(r for r in pipeline_rows(s) if r["config"] == config)


@app.task(name="ringrift.pipeline.list")
def list_pipelines() -> list[dict[str, Any]]:
    with current().session() as s:
        return pipeline_rows(s)


@app.task(name="ringrift.pipeline.tick")
def tick() -> dict[str, Any]:
    svc = current()
    with svc.session() as s:
        configs = list(s.scalars(select(PipelineState.config).where(PipelineState.enabled)))
    beat(redis_client())  # `ringrift health`: the beat is alive
    started = {config: advance(config) for config in configs}
    return {"started": started, "selfplay": feed_selfplay()}


FEED_CLAIM = "selfplay-feed"  # one feeder at a time, so two ticks never fill one place twice


def feed_selfplay() -> dict[str, int]:
    """Fill the free places of every live queue (one waiting task per consuming worker) with
    selfplay tasks, as the scheduler plans them; returns the tasks sent per configuration."""
    r = redis_client()
    if not claim(r, FEED_CLAIM, 60):
        return {}
    try:
        consumers = queue_consumers(app)
        tick_queue = app.conf.beat_schedule["pipeline-tick"]["options"]["queue"]
        if len(consumers) > 1:  # selfplay stays off the ticks' queue, or ticks wait behind it
            consumers.pop(tick_queue, None)
        waiting = backlogs(app, list(consumers))
        free = {q: max(0, n - waiting[q]) for q, n in consumers.items()}
        tasks, _ = plan(current(), r, free, slots=2 * sum(consumers.values()))
        counts: dict[str, int] = {}
        for task in tasks:
            sent(r, task, preset(task.preset, task.config).claim_seconds)
            play = app.signature("ringrift.selfplay.play_games", args=tuple(task.args()))
            collect = app.signature("ringrift.sync.collect", args=(task.config, task.generation))
            play = play.set(queue=task.queue, priority=SELFPLAY_PRIORITY)  # stages overtake it
            chain(play, collect.set(queue=task.queue)).apply_async()
            counts[task.config] = counts.get(task.config, 0) + 1
        if counts:
            log.info("selfplay sent: %s", counts)
        return counts
    finally:
        release(r, FEED_CLAIM)

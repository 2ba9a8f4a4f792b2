"""``ringrift.pipeline.tick``: the beat reconciler. For every enabled configuration it reads the
ledger and starts whatever is due, which also repairs any step a lost callback never started.
``advance`` is the same thing for one configuration, called by the stage callbacks.

The public controls, for ``.delay()`` from Python (``ringrift pipeline`` does the same from the
shell): ``start_pipeline(config, preset="default", generations=None)``,
``stop_pipeline(config)`` and ``list_pipelines()``."""

from __future__ import annotations

from typing import Any

from celery import chord, group
from celery.utils.log import get_task_logger
from sqlalchemy import select

from ringrift.celery import app
from ringrift.pipeline import Due, disable_pipeline, enable_pipeline, pipeline_rows, reconcile
from ringrift.presets import preset
from ringrift.queues import pick
from ringrift.service import current, redis_client
from ringrift.store.models import PipelineState

log = get_task_logger(__name__)


def start(due: Due) -> None:
    """Enqueue the task(s) for one claimed ``Due`` item."""
    d = due.detail
    if due.stage == "selfplay":
        queues = pick(app, d["tasks"])
        header = [
            app.signature(
                "ringrift.selfplay.play_games",
                args=(
                    due.config,
                    due.generation,
                    d["batch"],
                    i,
                    d["games"],
                    d["model_id"],
                    d["preset"],
                ),
            ).set(queue=q)
            for i, q in enumerate(queues)
        ]
        callback = app.signature("ringrift.sync.collect", args=(due.config, due.generation)).set(
            queue=pick(app, 1)[0]
        )
        chord(header)(callback)
    elif due.stage == "export":
        app.send_task(
            "ringrift.export.build_dataset",
            args=(due.config, due.generation, d["preset"]),
            queue=pick(app, 1)[0],
        )
    elif due.stage == "train":
        app.send_task(
            "ringrift.train.train_model",
            args=(d["run_id"], d["segment"]),
            queue=pick(app, 1, gpu_only=True)[0],
        )
    elif due.stage == "evaluate":
        p = preset(d["preset"])
        queues = pick(app, len(d["opponents"]))
        header = [
            app.signature(
                "ringrift.evaluate.play_match",
                args=(due.config, d["candidate_id"], opp, p.eval_games, d["preset"]),
            ).set(queue=q)
            for opp, q in zip(d["opponents"], queues, strict=True)
        ]
        callback = app.signature(
            "ringrift.evaluate.decide", args=(due.config, due.generation, d["candidate_id"])
        )
        chord(group(header))(callback.set(queue=pick(app, 1)[0]))
    elif due.stage == "decide":
        app.send_task(
            "ringrift.promote.promote_model",
            args=(due.config, due.generation, d["candidate_id"]),
            queue=pick(app, 1)[0],
        )
    else:  # pragma: no cover - reconcile only makes the stages above
        raise ValueError(f"unknown stage {due.stage!r}")
    log.info("%s g%d: started %s %s", due.config, due.generation, due.stage, d)


def advance(config: str) -> list[str]:
    """Start whatever is due for ``config`` now; returns the started stages."""
    started = []
    for due in reconcile(current(), redis_client(), config):
        start(due)
        started.append(due.stage)
    return started


@app.task(name="ringrift.pipeline.start")
def start_pipeline(
    config: str, preset: str = "default", generations: int | None = None
) -> dict[str, Any]:
    """Enable ``config``'s loop and start what is due now (the beat keeps it going)."""
    with current().session() as s:
        enable_pipeline(s, config, preset, generations)
    started = advance(config)
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
    started = {config: advance(config) for config in configs}
    return {"started": started}

"""``ringrift.promote.promote_model``: apply the promotion gate to a fully evaluated candidate;
if it passes, move the best-model pointer by compare-and-set and broadcast the new model to
every GPU queue. The gate is recomputed here from the ledger, so nothing can promote around it.
Then the configuration's rating table is fitted again (``ringrift.evaluate.rate``)."""

from __future__ import annotations

from typing import Any

from celery.utils.log import get_task_logger

from ringrift.celery import app
from ringrift.infra.queues import pick
from ringrift.infra.service import current, redis_client
from ringrift.pipeline.state import (
    apply_check,
    apply_decision,
    check_config,
    check_generation,
    check_id,
    load_state,
    running_stage,
)

log = get_task_logger(__name__)


@app.task(name="ringrift.promote.promote_model")
def promote_model(config: str, generation: int, candidate_id: str) -> dict[str, Any]:
    check_config(config)
    check_generation(generation)
    check_id("candidate_id", candidate_id)
    svc, r = current(), redis_client()
    key = f"{config}:{generation}:decide"
    with running_stage(svc, r, key), svc.session() as s:
        outcome = apply_decision(s, config, generation, candidate_id)
    if outcome == "promoted":
        from ringrift.tasks.sync import broadcast_model

        broadcast_model.delay(candidate_id)
    app.send_task("ringrift.evaluate.rate", args=(config,), queue=pick(app, 1)[0])
    from ringrift.tasks.pipeline import hand_on

    hand_on(config)
    return {"candidate_id": candidate_id, "outcome": outcome}


@app.task(name="ringrift.promote.verify_promotion")
def verify_promotion(config: str, generation: int, model_id: str) -> dict[str, Any]:
    """Judge a new best's check against the best it replaced (``state.apply_check``): keep it,
    or roll the best-model pointer back and tell every worker."""
    check_config(config)
    check_generation(generation)
    check_id("model_id", model_id)
    svc, r = current(), redis_client()
    key = f"{config}:{generation}:verify"
    with running_stage(svc, r, key), svc.session() as s:
        outcome = apply_check(s, config, model_id)
        best = load_state(s, config).best_model_id
    if outcome == "rolled back" and best is not None:
        from ringrift.tasks.sync import broadcast_model

        broadcast_model.delay(best)
    from ringrift.tasks.pipeline import hand_on

    hand_on(config)
    return {"model_id": model_id, "outcome": outcome, "best": best}

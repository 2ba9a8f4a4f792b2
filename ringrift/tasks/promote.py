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
from ringrift.pipeline.state import apply_decision, check_config, check_generation, release

log = get_task_logger(__name__)


@app.task(name="ringrift.promote.promote_model")
def promote_model(config: str, generation: int, candidate_id: str) -> dict[str, Any]:
    check_config(config)
    check_generation(generation)
    svc = current()
    with svc.session() as s:
        outcome = apply_decision(s, config, generation, candidate_id)
    release(redis_client(), f"{config}:{generation}:decide")
    if outcome == "promoted":
        from ringrift.tasks.sync import broadcast_model

        broadcast_model.delay(candidate_id)
    app.send_task("ringrift.evaluate.rate", args=(config,), queue=pick(app, 1)[0])
    from ringrift.tasks.pipeline import advance

    advance(config)
    return {"candidate_id": candidate_id, "outcome": outcome}

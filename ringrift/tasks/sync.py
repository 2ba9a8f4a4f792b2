"""Moving artifacts: ``collect`` ingests selfplay shards into the ledger (the selfplay chord's
callback), ``pull`` brings an artifact into one worker's cache, ``broadcast_model`` sends a pull
to every GPU queue."""

from __future__ import annotations

from typing import Any

from celery import group
from celery.utils.log import get_task_logger

from ringrift.celery import app
from ringrift.errors import ServiceError
from ringrift.pipeline import check_config, check_generation, ingest_shard, release
from ringrift.queues import gpu_queues
from ringrift.service import current, redis_client
from ringrift.store.models import Artifact, Model

log = get_task_logger(__name__)


@app.task(name="ringrift.sync.collect")
def collect(results: list[dict[str, Any]], config: str, generation: int) -> dict[str, Any]:
    check_config(config)
    check_generation(generation)
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ServiceError(f"collect expects the selfplay results, got {results!r}")
    svc = current()
    ingested = 0
    with svc.session() as s:
        for res in results:
            artifact = s.get(Artifact, res.get("artifact_id"))
            if artifact is None:
                raise ServiceError(f"shard {res.get('artifact_id')!r} is not in the ledger")
            if artifact.config != config:
                raise ServiceError(
                    f"shard {artifact.id} holds {artifact.config} games, not {config}"
                )
            ingested += ingest_shard(svc, s, artifact)
    log.info(
        "%s g%d: ingested %d new games from %d shards", config, generation, ingested, len(results)
    )
    release(redis_client(), f"{config}:{generation}:selfplay")
    from ringrift.tasks.pipeline import advance

    advance(config)
    return {"ingested": ingested, "shards": len(results)}


@app.task(name="ringrift.sync.pull")
def pull(artifact_id: str) -> dict[str, Any]:
    svc = current()
    with svc.session() as s:
        artifact = s.get(Artifact, artifact_id)
        if artifact is None:
            raise ServiceError(f"artifact {artifact_id!r} is not in the ledger")
        path = svc.cache.pull(artifact.id, artifact.path, artifact.sha256)
    return {"artifact_id": artifact_id, "path": str(path)}


@app.task(name="ringrift.sync.broadcast_model")
def broadcast_model(model_id: str) -> dict[str, Any]:
    svc = current()
    with svc.session() as s:
        model = s.get(Model, model_id)
        if model is None:
            raise ServiceError(f"model {model_id!r} is not in the ledger")
        artifact_id = model.artifact_id
    queues = gpu_queues(app)
    if queues:
        group(pull.si(artifact_id).set(queue=q) for q in queues).apply_async()
    log.info("broadcast %s to %s", model_id, queues or "no GPU queue")
    return {"model_id": model_id, "queues": queues}

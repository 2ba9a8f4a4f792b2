"""Moving artifacts: ``collect`` ingests selfplay shards into the ledger (the selfplay chord's
callback), ``pull`` brings an artifact into one worker's cache, ``broadcast_model`` sends a pull
to every live worker through its own queue, so every host's cache holds a promoted model."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from celery.utils.log import get_task_logger
from celery.utils.nodenames import worker_direct
from kombu.exceptions import OperationalError

from ringrift.celery import app
from ringrift.errors import ServiceError
from ringrift.infra.queues import live_workers
from ringrift.infra.service import current, redis_client
from ringrift.pipeline.quarantine import was_set_aside
from ringrift.pipeline.state import check_config, check_generation, check_id, ingest_shard
from ringrift.store.models import Artifact, Model

log = get_task_logger(__name__)


@app.task(name="ringrift.sync.collect")
def collect(
    results: list[dict[str, Any]] | dict[str, Any], config: str, generation: int
) -> dict[str, Any]:
    """Ingest the shards a selfplay chord (or one chained selfplay task) stored, then move the
    loop on: enough new games start an export."""
    check_config(config)
    check_generation(generation)
    if isinstance(results, dict):  # one selfplay task's result, when chained after it
        results = [results]
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and (r.get("stale") is True or isinstance(r.get("artifact_id"), str))
        for r in results
    ):
        raise ServiceError(
            f"results must be the selfplay results ({{'artifact_id': ...}} each), got {results!r}"
        )
    for i, res in enumerate(results):
        if res.get("stale") is not True:
            check_id(f"results[{i}].artifact_id", res["artifact_id"])
    svc = current()
    ingested, set_aside = 0, []
    for res in results:
        if res.get("stale") is True:  # played for an iteration that was already over
            continue
        with svc.session() as s:  # one shard at a time: a set-aside shard stays recorded
            artifact = s.get(Artifact, res.get("artifact_id"))
            if artifact is None and was_set_aside(s, res["artifact_id"]):
                set_aside.append(res["artifact_id"])  # a redelivery, after a collect set it aside
                continue
            if artifact is None:
                raise ServiceError(f"shard {res.get('artifact_id')!r} is not in the ledger")
            if artifact.config != config:
                raise ServiceError(
                    f"shard {artifact.id} holds {artifact.config} games, not {config}"
                )
            artifact_id = artifact.id
            n = ingest_shard(svc, s, artifact, f"collect on {svc.settings.host}")
        if n is None:
            set_aside.append(artifact_id)
        else:
            ingested += n
    log.info(
        "%s g%d: ingested %d new games from %d shards", config, generation, ingested, len(results)
    )
    from ringrift.tasks.pipeline import hand_on

    hand_on(config)
    return {"ingested": ingested, "shards": len(results), "set_aside": set_aside}


CACHED_MODELS = "ringrift:cached-models:"  # + config: a hash, host -> JSON {model_id, at}


@app.task(name="ringrift.sync.pull")
def pull(artifact_id: str, model_id: str | None = None) -> dict[str, Any]:
    """Bring an artifact into this worker's cache, verified. Given the model it holds, record
    that this host's cache has it (``ringrift status`` shows it per host)."""
    if not isinstance(artifact_id, str):
        raise ServiceError(f"pull needs an artifact id, got {artifact_id!r}")
    if model_id is not None and not isinstance(model_id, str):
        raise ServiceError(f"pull: model_id must be a model id, got {model_id!r}")
    svc = current()
    with svc.session() as s:
        artifact = s.get(Artifact, artifact_id)
        if artifact is None:
            raise ServiceError(f"artifact {artifact_id!r} is not in the ledger")
        model = s.get(Model, model_id) if model_id is not None else None
        if model_id is not None and (model is None or model.artifact_id != artifact_id):
            raise ServiceError(f"model {model_id!r} is not the artifact {artifact_id!r}")
        path = svc.cache.pull(artifact.id, artifact.path, artifact.sha256)
        config = model.config if model is not None else None
    if model_id is not None and config is not None:
        record = json.dumps({"model_id": model_id, "at": time.time()})
        redis_client().hset(CACHED_MODELS + config, svc.settings.host, record)
    return {"artifact_id": artifact_id, "path": str(path), "host": svc.settings.host}


def cached_models(config: str) -> dict[str, dict[str, Any]]:
    """Per host, the last model of ``config`` a broadcast put in its cache."""
    raw = redis_client().hgetall(CACHED_MODELS + config)
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): json.loads(v)
        for k, v in sorted(raw.items())
    }


@app.task(
    name="ringrift.sync.broadcast_model",
    # the workers are asked who is live over the broker: a broker that just came back is
    # asked again, rather than a new best model reaching no worker's cache in advance
    autoretry_for=(OperationalError, redis.ConnectionError),
    retry_backoff=True,
    max_retries=5,
)
def broadcast_model(model_id: str) -> dict[str, Any]:
    check_id("model_id", model_id)
    svc = current()
    with svc.session() as s:
        model = s.get(Model, model_id)
        if model is None:
            raise ServiceError(f"model {model_id!r} is not in the ledger")
        artifact_id = model.artifact_id
    nodes = live_workers(app)
    for node in nodes:
        pull.apply_async((artifact_id, model_id), queue=worker_direct(node))
    log.info("broadcast %s to %s", model_id, nodes or "no live worker")
    return {"model_id": model_id, "workers": nodes}

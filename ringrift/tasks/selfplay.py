"""``ringrift.selfplay.play_games``: play a batch of games with the current best model and store
them as one shard artifact. Idempotent: the shard's name and every game's seed come from the
arguments, so a redelivered task finds (or rewrites identically) its own shard. It beats while it
plays (``ringrift.pipeline.heartbeat``), so a worker's death has the shard sent again at once."""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path
from typing import Any

from celery.utils.log import get_task_logger

from ringrift.ai.batched import BatchedSettings, Timers, play_batched, to_played
from ringrift.ai.mcts import UniformEvaluator
from ringrift.ai.selfplay import ShardHeader, write_shard
from ringrift.celery import app
from ringrift.errors import ServiceError
from ringrift.game import GameConfig
from ringrift.infra.service import Service, current, redis_client
from ringrift.pipeline.heartbeat import beating
from ringrift.pipeline.presets import preset
from ringrift.pipeline.scheduler import ended
from ringrift.pipeline.state import (
    MAX_EXPLORATION,
    check_config,
    check_count,
    check_generation,
    check_id,
    shard_name,
)
from ringrift.store import ArtifactConflict, ArtifactRef, record_artifact
from ringrift.store.models import Artifact, PipelineState
from ringrift.tasks.common import model_evaluator
from workers import runtime

log = get_task_logger(__name__)


def game_seed(config: str, generation: int, batch: str, index: int, game: int) -> int:
    return zlib.crc32(f"{config}/{generation}/{batch}/{index}/{game}".encode())


@app.task(name="ringrift.selfplay.play_games", bind=True)
def play_games(
    self: Any,
    config: str,
    generation: int,
    batch: str,
    index: int,
    games: int,
    model_id: str | None,
    preset_name: str,
    exploration: int = 0,
) -> dict[str, Any]:
    cfg = check_config(config)
    check_generation(generation)
    p = preset(preset_name, config)
    check_count("games", games, 1, 10_000)
    check_count("index", index, 0, 99)
    check_id("model_id", model_id, optional=True)
    if not isinstance(batch, str) or not batch.isalnum():
        raise ServiceError(f"batch must be an alphanumeric id, got {batch!r}")
    if (
        not isinstance(exploration, int)
        or isinstance(exploration, bool)
        or not 0 <= exploration <= MAX_EXPLORATION
    ):
        raise ServiceError(f"exploration must be a level 0..{MAX_EXPLORATION}, got {exploration!r}")
    name = shard_name(config, generation, batch, index)
    svc = current()
    r = redis_client()
    try:
        with svc.session() as s:
            if s.get(Artifact, name) is not None:
                log.info("shard %s already stored (redelivery)", name)
                return {"artifact_id": name, "games": games}
            st = s.get(PipelineState, config)
            if st is not None and st.generation > generation + 1:
                # A message handed back hours after its worker died: two iterations on.
                log.info("shard %s not played: %s is at generation %d", name, config, st.generation)
                return {"artifact_id": None, "games": 0, "stale": True}
        settings = p.selfplay_settings(games, exploration)
        with beating(r, name, svc.settings.task_heartbeat_seconds, svc.settings.host):
            ref = _play_and_store(svc, cfg, settings, name, generation, batch, index, model_id)
    finally:
        ended(r, config, name)  # the scheduler counts it out of flight, however it ended
    log.info("stored %s: %d games, %d bytes", name, games, ref.size)
    return {"artifact_id": name, "games": games}


def _play_and_store(
    svc: Service,
    cfg: GameConfig,
    settings: BatchedSettings,
    name: str,
    generation: int,
    batch: str,
    index: int,
    model_id: str | None,
) -> ArtifactRef:
    config = cfg.name
    games = settings.parallel_games
    with svc.session() as s:
        evaluator = (
            model_evaluator(svc, s, model_id, cfg.board.value, runtime.DEVICE)
            if model_id
            else UniformEvaluator()
        )
    seeds = [game_seed(config, generation, batch, index, g) for g in range(games)]
    ids = [f"{name}-{g:03d}" for g in range(games)]
    timers = Timers()
    batched = play_batched(cfg, evaluator, settings, seeds, ids, timers)
    played = [to_played(g, cfg, settings, model_id) for g in batched]
    log.info(
        "%s: %d games, %.0f network evaluations/s, mean batch %.1f",
        name,
        games,
        timers.evaluations / max(timers.total_s, 1e-9),
        timers.mean_batch,
    )
    with tempfile.TemporaryDirectory(dir=svc.settings.data_dir) as tmp:
        path = Path(tmp) / "shard.jsonl.gz"
        write_shard(path, ShardHeader(config, generation, model_id, len(played)), played)
        try:
            ref = svc.store.put_file("shard", path, name=name, config=config)
        except ArtifactConflict:
            # Another attempt at this shard (sent again while this one was thought lost) stored
            # it first, from other hardware; the ledger's copy stands.
            with svc.session() as s:
                row = s.get(Artifact, name)
                if row is None:
                    raise
                log.warning("shard %s was stored by another attempt; keeping that one", name)
                return ArtifactRef.from_row(row)
    with svc.session() as s:
        record_artifact(s, ref, config)
    return ref

"""Evaluation: ``play_match`` plays the candidate against one opponent (random, the heuristic
player, or the current best model), every game of the match in flight at once with the
networks' positions batched, and records the result once; ``decide`` is the match
group's chord callback and hands the decision to the promotion step."""

from __future__ import annotations

import zlib
from typing import Any, cast

from celery.utils.log import get_task_logger
from sqlalchemy import Table, select

from ringrift.ai.arena import MatchResult
from ringrift.ai.match import BASELINES, NetSide, Side, baseline_side, play_match_batched
from ringrift.celery import app
from ringrift.errors import ServiceError
from ringrift.game import GameConfig
from ringrift.infra.service import Service, current, redis_client
from ringrift.pipeline.heartbeat import beating
from ringrift.pipeline.presets import preset
from ringrift.pipeline.state import (
    check_config,
    check_generation,
    evaluation_name,
    match_name,
    release_if_finished,
)
from ringrift.store.db import insert_ignoring_duplicates
from ringrift.store.models import EvaluationMatch, Model
from ringrift.tasks.common import model_evaluator
from workers import runtime

log = get_task_logger(__name__)


@app.task(name="ringrift.evaluate.play_match")
def play_match_task(
    config: str, candidate_id: str, opponent: str, games: int, preset_name: str
) -> dict[str, Any]:
    cfg = check_config(config)
    p = preset(preset_name, config)
    if not isinstance(games, int) or not 1 <= games <= 100_000:
        raise ServiceError(f"games must be between 1 and 100000, got {games!r}")
    if not isinstance(opponent, str) or not opponent or opponent == candidate_id:
        raise ServiceError(f"opponent must be a baseline or another model, got {opponent!r}")
    evaluation_id = evaluation_name(candidate_id)
    svc = current()
    with svc.session() as s:
        done = s.scalar(
            select(EvaluationMatch).where(
                EvaluationMatch.evaluation_id == evaluation_id, EvaluationMatch.opponent == opponent
            )
        )
        if done is not None:
            log.info("%s vs %s already played (redelivery)", candidate_id, opponent)
            return {
                "opponent": opponent,
                "wins": done.wins,
                "losses": done.losses,
                "draws": done.draws,
                "games": done.games,
            }
        candidate_model = s.get(Model, candidate_id)
        if candidate_model is None or candidate_model.config != config:
            raise ServiceError(f"candidate {candidate_id!r} is not a {config} model in the ledger")
        board = cfg.board.value
        cand_eval = model_evaluator(svc, s, candidate_id, board, runtime.DEVICE)
        opp_eval = None
        if opponent not in BASELINES:
            opp_eval = model_evaluator(svc, s, opponent, board, runtime.DEVICE)

    cand = NetSide(candidate_id, cand_eval)
    rival: Side = baseline_side(opponent) if opp_eval is None else NetSide(opponent, opp_eval)
    seed = zlib.crc32(f"{evaluation_id}/{opponent}".encode())
    beat = svc.settings.task_heartbeat_seconds
    with beating(redis_client(), match_name(candidate_id, opponent), beat, svc.settings.host):
        played = play_match_batched(cfg, cand, rival, range(games), seed, p.match_settings())
        res = played.result()
        _record(svc, cfg, candidate_id, opponent, res)
    t = played.timers
    log.info(
        "%s vs %s: %d-%d-%d in %.1f s (network %.0f%%, %d positions in %d calls)",
        candidate_id,
        opponent,
        res.wins,
        res.losses,
        res.draws,
        t.total_s,
        100 * t.network_s / t.total_s if t.total_s else 0.0,
        t.evaluations,
        t.batches,
    )
    return {
        "opponent": opponent,
        "wins": res.wins,
        "losses": res.losses,
        "draws": res.draws,
        "games": res.games,
    }


def _record(
    svc: Service, cfg: GameConfig, candidate_id: str, opponent: str, res: MatchResult
) -> None:
    """Store the match's result once (a second delivery's insert is ignored)."""
    evaluation_id = evaluation_name(candidate_id)
    with svc.session() as s:
        table = cast(Table, EvaluationMatch.__table__)
        stmt = insert_ignoring_duplicates(s, table, ["evaluation_id", "opponent"])
        s.execute(
            stmt,
            [
                {
                    "evaluation_id": evaluation_id,
                    "config": cfg.name,
                    "candidate_id": candidate_id,
                    "opponent": opponent,
                    "games": res.games,
                    "wins": res.wins,
                    "losses": res.losses,
                    "draws": res.draws,
                }
            ],
        )


@app.task(name="ringrift.evaluate.decide")
def decide(
    results: list[dict[str, Any]], config: str, generation: int, candidate_id: str
) -> dict[str, Any]:
    check_config(config)
    check_generation(generation)
    release_if_finished(current(), redis_client(), f"{config}:{generation}:evaluate")
    from ringrift.tasks.pipeline import advance

    advance(config)  # all matches recorded: the reconciler claims and starts the decision
    return {"candidate_id": candidate_id, "matches": len(results)}

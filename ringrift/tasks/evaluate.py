"""Evaluation: ``play_match`` plays one chunk of the candidate's match against one opponent
(random, the heuristic player, or the current best model): games ``first_game`` onwards of that
match, every game in flight at once with the networks' positions batched, and records the
chunk once with its rank scores. A chunk plays exactly the games the whole match would (the
match's seed, the games' numbers), so a match split over several queues is the same match.
``decide`` is the chunk group's chord callback: it hands on to the reconciler, which sends the
next chunks against the best while its sequential test is undecided, then the decision."""

from __future__ import annotations

import json
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
from ringrift.pipeline.rating_table import refit
from ringrift.pipeline.sprt import histogram
from ringrift.pipeline.state import (
    FAILED_RETRY_SECONDS,
    check_config,
    check_count,
    check_generation,
    check_id,
    check_name,
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
    config: str,
    candidate_id: str,
    opponent: str,
    games: int,
    preset_name: str,
    first_game: int = 0,
    evaluation: str | None = None,
) -> dict[str, Any]:
    cfg = check_config(config)
    p = preset(preset_name, config)
    check_count("games", games, 1, 100_000)
    check_count("first_game", first_game, 0, 1_000_000)
    check_id("candidate_id", candidate_id)
    if not isinstance(opponent, str) or not opponent or opponent == candidate_id:
        raise ServiceError(f"opponent must be a baseline or another model, got {opponent!r}")
    evaluation_id = evaluation_name(candidate_id)
    if evaluation is not None and evaluation not in (evaluation_id, check_name(candidate_id)):
        raise ServiceError(
            f"evaluation must be {evaluation_id!r} or {check_name(candidate_id)!r}, "
            f"got {evaluation!r}"
        )
    evaluation_id = evaluation or evaluation_id
    svc = current()
    name = match_name(candidate_id, opponent, first_game, evaluation_id)
    beat = svc.settings.task_heartbeat_seconds
    # a chunk that raises on a database or broker that is away (not on bad input) is sent
    # again after a short while
    with beating(redis_client(), name, beat, svc.settings.host, FAILED_RETRY_SECONDS):
        with svc.session() as s:
            done = s.scalar(
                select(EvaluationMatch).where(
                    EvaluationMatch.evaluation_id == evaluation_id,
                    EvaluationMatch.opponent == opponent,
                    EvaluationMatch.first_game == first_game,
                )
            )
            if done is not None:
                log.info(
                    "%s vs %s from game %d already played (redelivery)",
                    candidate_id,
                    opponent,
                    first_game,
                )
                return _summary(
                    done.opponent, first_game, done.games, done.wins, done.losses, done.draws
                )
            candidate_model = s.get(Model, candidate_id)
            if candidate_model is None or candidate_model.config != config:
                raise ServiceError(
                    f"candidate {candidate_id!r} is not a {config} model in the ledger"
                )
            board = cfg.board.value
            cand_eval = model_evaluator(svc, s, candidate_id, board, runtime.DEVICE)
            opp_eval = None
            if opponent not in BASELINES:
                opp_eval = model_evaluator(svc, s, opponent, board, runtime.DEVICE)

        cand = NetSide(candidate_id, cand_eval)
        rival: Side = baseline_side(opponent) if opp_eval is None else NetSide(opponent, opp_eval)
        seed = zlib.crc32(f"{evaluation_id}/{opponent}".encode())
        numbers = range(first_game, first_game + games)
        played = play_match_batched(cfg, cand, rival, numbers, seed, p.match_settings())
        res = played.result()
        scores = [g.score for g in played.games]
        _record(svc, cfg, evaluation_id, candidate_id, opponent, first_game, res, scores)
    t = played.timers
    log.info(
        "%s vs %s, games %d-%d: %d-%d-%d, score %.3f, in %.1f s "
        "(network %.0f%%, %d positions in %d calls)",
        candidate_id,
        opponent,
        first_game,
        first_game + games - 1,
        res.wins,
        res.losses,
        res.draws,
        sum(scores) / len(scores),
        t.total_s,
        100 * t.network_s / t.total_s if t.total_s else 0.0,
        t.evaluations,
        t.batches,
    )
    return _summary(opponent, first_game, res.games, res.wins, res.losses, res.draws)


def _summary(
    opponent: str, first_game: int, games: int, wins: int, losses: int, draws: int
) -> dict[str, Any]:
    return {
        "opponent": opponent,
        "first_game": first_game,
        "wins": wins,
        "losses": losses,
        "draws": draws,
        "games": games,
    }


def _record(
    svc: Service,
    cfg: GameConfig,
    evaluation_id: str,
    candidate_id: str,
    opponent: str,
    first_game: int,
    res: MatchResult,
    scores: list[float],
) -> None:
    """Store the chunk's result once (a second delivery's insert is ignored)."""
    counts = histogram(scores)
    with svc.session() as s:
        table = cast(Table, EvaluationMatch.__table__)
        stmt = insert_ignoring_duplicates(s, table, ["evaluation_id", "opponent", "first_game"])
        s.execute(
            stmt,
            [
                {
                    "evaluation_id": evaluation_id,
                    "config": cfg.name,
                    "candidate_id": candidate_id,
                    "opponent": opponent,
                    "first_game": first_game,
                    "games": res.games,
                    "wins": res.wins,
                    "losses": res.losses,
                    "draws": res.draws,
                    "score": sum(scores),
                    "histogram": json.dumps({repr(v): n for v, n in sorted(counts.items())}),
                }
            ],
        )


@app.task(name="ringrift.evaluate.decide")
def decide(
    results: list[dict[str, Any]],
    config: str,
    generation: int,
    candidate_id: str,
    stage: str = "evaluate",
) -> dict[str, Any]:
    check_config(config)
    check_generation(generation)
    if stage not in ("evaluate", "check"):
        raise ServiceError(f"stage must be 'evaluate' or 'check', got {stage!r}")
    release_if_finished(current(), redis_client(), f"{config}:{generation}:{stage}")
    from ringrift.tasks.pipeline import hand_on

    hand_on(config)  # all matches recorded: the reconciler claims and starts the decision
    return {"candidate_id": candidate_id, "matches": len(results)}


@app.task(name="ringrift.evaluate.rate")
def rate(config: str) -> dict[str, Any]:
    """Fit ``config``'s rating table again from every recorded chunk (sent after each
    decision); a fit of as many chunks or more stored by someone else stands."""
    check_config(config)
    with current().session() as s:
        written = refit(s, config)
    return {"config": config, "players": written}

"""``ringrift status``: where each configuration's loop stands, from the ledger and the broker."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ringrift.infra.service import Service
from ringrift.pipeline.rating_table import promoted_ratings
from ringrift.pipeline.state import game_count, is_done, match_rows, match_scores, run_name
from ringrift.store.models import (
    Game,
    Model,
    PipelineState,
    ScheduleChange,
    TrainingRun,
    utcnow,
)


def config_status(svc: Service, config: str) -> dict[str, Any]:
    with svc.session() as s:
        st = s.get(PipelineState, config)
        if st is None:
            return {
                "config": config,
                "generation": 0,
                "stage": "not started",
                "games_total": 0,
                "games_new": 0,
                "games_this_generation": 0,
                "best_model": None,
                "training": None,
            }
        total = game_count(s, config)
        out: dict[str, Any] = {
            "config": config,
            "enabled": st.enabled,
            "preset": st.preset,
            "generation": st.generation,
            "target_generations": st.target_generations,
            "stage": "done" if is_done(s, st) else st.stage,
            "games_total": total,
            "games_new": total - st.last_export_game_count,
            "games_this_generation": game_count(s, config, st.generation),
            "best_model": st.best_model_id,
            "best_evaluation": None,
            "training": None,
            **_schedule(s, st),
        }
        if st.best_model_id:
            best = s.get(Model, st.best_model_id)
            out["best_evaluation"] = {
                "decision": json.loads(best.decision) if best and best.decision else None,
                "matches": _matches(s, st.best_model_id),
            }
        out["last_decision"] = _last_decision(s, config)
        run = s.get(TrainingRun, run_name(config, st.generation))
        if run is not None and run.status != "done":
            out["training"] = {
                "run": run.id,
                "status": run.status,
                "step": run.step,
                "total_steps": run.total_steps,
                "loss": run.last_loss,
                "samples_per_s": run.samples_per_s,
                "eta_s": run.eta_s,
                "segment": run.segment,
                "cancel_requested": run.cancel_requested,
                "error": run.error,
            }
    return out


def _matches(s: Session, model_id: str) -> dict[str, dict[str, Any]]:
    """Each opponent's chunks added up: games, wins, losses, draws and mean rank score."""
    return {
        opponent: {
            "games": m.games,
            "wins": m.wins,
            "losses": m.losses,
            "draws": m.draws,
            "score": round(m.score, 4),
        }
        for opponent, m in match_scores(match_rows(s, model_id)).items()
    }


def _last_decision(s: Session, config: str) -> dict[str, Any] | None:
    """The newest gate decision of ``config`` (promoted or not), with its sequential test."""
    model = s.scalars(
        select(Model)
        .where(Model.config == config, Model.decided_at.is_not(None))
        .order_by(Model.decided_at.desc(), Model.id.desc())
        .limit(1)
    ).first()
    if model is None or not model.decision:
        return None
    decision = json.loads(model.decision)
    return {
        "model": model.id,
        "status": model.status,
        "at": model.decided_at.isoformat() if model.decided_at else None,
        "sprt": decision.get("sprt"),
        "check": decision.get("check"),  # a promoted model's check against the best it replaced
        "reasons": decision.get("reasons", []),
    }


def _schedule(s: Session, st: PipelineState) -> dict[str, Any]:
    """The scheduler's view of ``st``: what it last recorded, the rating, the game rate."""
    last = s.scalars(
        select(ScheduleChange)
        .where(ScheduleChange.config == st.config, ScheduleChange.kind == "target")
        .order_by(ScheduleChange.id.desc())
        .limit(1)
    ).first()
    ratings = promoted_ratings(s, st.config)
    hour_ago = utcnow() - timedelta(hours=1)
    per_hour = s.scalar(
        select(func.count())
        .select_from(Game)
        .where(Game.config == st.config, Game.created_at >= hour_ago)
    )
    return {
        "weight": st.weight,
        "priority": st.priority,
        "share": last.share if last is not None else None,
        "target": st.target,
        "exploration": st.exploration,
        "rating": ratings[-1][1] if ratings else None,
        "games_per_hour": int(per_hour or 0),
    }


def recent_changes(s: Session, limit: int = 10) -> list[dict[str, Any]]:
    """The newest schedule and exploration changes, newest first, with their reasons."""
    rows = s.scalars(select(ScheduleChange).order_by(ScheduleChange.id.desc()).limit(limit))
    return [
        {
            "at": c.created_at.isoformat(),
            "config": c.config,
            "kind": c.kind,
            "target": c.target,
            "exploration": c.exploration,
            "reason": c.reason,
        }
        for c in rows
    ]


def queue_depths(app: Any, queues: list[str]) -> dict[str, int]:
    from ringrift.infra.queues import backlogs

    return backlogs(app, queues)


def all_status(svc: Service, app: Any) -> dict[str, Any]:
    from ringrift.infra.queues import consumed_queues
    from ringrift.pipeline.quarantine import quarantine_count

    with svc.session() as s:
        configs = list(s.scalars(select(PipelineState.config).order_by(PipelineState.config)))
        models = s.scalar(select(func.count()).select_from(Model)) or 0
        changes = recent_changes(s)
        set_aside = quarantine_count(s)
    reports = [config_status(svc, c) for c in configs]
    try:
        queues = consumed_queues(app, refresh=True)
        depths = queue_depths(app, sorted(set(queues) | {"cpu", "gpu0"}))
        from ringrift.tasks.sync import cached_models

        for report in reports:  # which model each host's cache holds, per configuration
            report["host_caches"] = cached_models(report["config"])
    except Exception as e:  # the ledger is still worth showing without a broker
        depths = {"error": f"broker unreachable: {e}"}  # type: ignore[dict-item]
    return {
        "configs": reports,
        "models": models,
        "set_aside": set_aside,
        "queues": depths,
        "schedule_changes": changes,
    }

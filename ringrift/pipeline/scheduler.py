"""The selfplay scheduler: each tick, which configurations the free queues' next selfplay tasks
go to.

Selfplay never waits for the rest of the loop: while a configuration exports, trains and
evaluates, its selfplay goes on with its current best model. Each tick the scheduler reads the
ledger (new games, promotions, ratings, curriculum weight) and Redis (the selfplay tasks in
flight), computes every enabled configuration's priority (``ringrift.pipeline.priority``), moves a
configuration's recorded target only past the thresholds, writing a ``ScheduleChange`` row with
the reason, and fills each queue's free places: configurations below their target first, none
under backpressure (unexported games past the preset's bound). It sends nothing itself
(``tasks.pipeline.tick`` does), so it can be run and explained anywhere.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ringrift.infra.service import Service
from ringrift.pipeline.presets import preset
from ringrift.pipeline.priority import (
    Priority,
    Signals,
    allocate,
    change_reason,
    priority,
    shares,
    targets,
)
from ringrift.pipeline.rating_table import promoted_ratings
from ringrift.pipeline.state import current_best, game_count, shard_name, target_reached
from ringrift.store.models import Model, PipelineState, ScheduleChange, utcnow

INFLIGHT = "ringrift:selfplay:inflight:"  # + config: sorted set, shard name -> time sent
LAST_SENT = "ringrift:selfplay:last_sent"  # hash: config -> time its last task was sent
NEVER_SENT_S = 24 * 3600.0  # the wait counted for a configuration with no task sent yet


@dataclass(frozen=True)
class SelfplayTask:
    """One selfplay task to send: a shard of ``games`` games played by ``model_id``."""

    config: str
    generation: int
    batch: str
    games: int
    model_id: str | None
    preset: str
    exploration: int
    queue: str

    @property
    def shard(self) -> str:
        return shard_name(self.config, self.generation, self.batch, 0)

    def args(self) -> list[Any]:
        return [
            self.config,
            self.generation,
            self.batch,
            0,
            self.games,
            self.model_id,
            self.preset,
            self.exploration,
        ]


@dataclass(frozen=True)
class ConfigSchedule:
    """Why one configuration gets the share it gets (``ringrift schedule --explain``)."""

    config: str
    priority: Priority
    share: float
    target: int  # the recorded target: selfplay tasks in flight it is given
    wanted: int  # the target the priority asks for now (recorded once past the thresholds)
    inflight: int
    new_games: int
    blocked: str | None  # why it gets no selfplay now, if it gets none
    exploration: int
    last_change: str | None

    def to_dict(self) -> dict[str, Any]:
        p = self.priority
        return {
            "config": self.config,
            "priority": round(p.value, 3),
            "deficit": round(p.deficit, 3),
            "staleness": round(p.staleness, 3),
            "velocity": round(p.velocity, 3),
            "weight": p.weight,
            "share": round(self.share, 4),
            "target": self.target,
            "wanted": self.wanted,
            "inflight": self.inflight,
            "new_games": self.new_games,
            "blocked": self.blocked,
            "exploration": self.exploration,
            "last_change": self.last_change,
            "explain": p.explain(),
        }


# ----- what the ledger says ---------------------------------------------------------------------


def _hours_since_promotion(s: Session, config: str) -> float:
    last = s.scalar(
        select(Model.decided_at)
        .where(Model.config == config, Model.status == "promoted", Model.decided_at.is_not(None))
        .order_by(Model.decided_at.desc())
        .limit(1)
    )
    if last is None:
        return float("inf")  # no model yet: as stale as it gets
    now = utcnow()
    if last.tzinfo is None:
        now = now.replace(tzinfo=None)
    return max(0.0, (now - last).total_seconds() / 3600)


def inflight(r: redis.Redis, config: str, older_than: float) -> int:
    """Selfplay tasks of ``config`` sent and not yet ended; entries older than ``older_than``
    seconds are tasks lost with their worker, dropped."""
    key = INFLIGHT + config
    r.zremrangebyscore(key, "-inf", time.time() - older_than)
    return int(r.zcard(key))


def sent(r: redis.Redis, task: SelfplayTask, seconds: int) -> None:
    now = time.time()
    r.zadd(INFLIGHT + task.config, {task.shard: now})
    r.expire(INFLIGHT + task.config, seconds)
    r.hset(LAST_SENT, task.config, now)


def waited(r: redis.Redis) -> dict[str, float]:
    """Seconds since each configuration's last selfplay task was sent."""
    now = time.time()
    out: dict[str, float] = {}
    for k, v in r.hgetall(LAST_SENT).items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        try:
            out[key] = max(0.0, now - float(v))
        except ValueError:
            continue  # not a time: counted as never sent
    return out


def ended(r: redis.Redis, config: str, shard: str) -> None:
    r.zrem(INFLIGHT + config, shard)


# ----- the plan of one tick ---------------------------------------------------------------------


def plan(
    svc: Service, r: redis.Redis, free: dict[str, int], slots: int, *, record: bool = True
) -> tuple[list[SelfplayTask], list[ConfigSchedule]]:
    """The selfplay tasks to send now (``free``: queue -> places to fill; ``slots``: selfplay
    tasks the cluster runs at once) and every enabled configuration's schedule. ``record``
    False only looks: no target moves, nothing is written (``ringrift schedule``)."""
    rows: list[tuple[PipelineState, Priority, int, int, int, str | None]] = []
    with svc.session() as s:
        states = list(
            s.scalars(
                select(PipelineState).where(PipelineState.enabled).order_by(PipelineState.config)
            )
        )
        for st in states:
            if target_reached(st):
                continue
            p = preset(st.preset, st.config)
            new = game_count(s, st.config) - st.last_export_game_count
            sig = Signals(
                st.config,
                st.weight,
                new,
                p.games_per_generation,
                _hours_since_promotion(s, st.config),
                p.stale_hours,
                [v for _, v in promoted_ratings(s, st.config)],
            )
            flying = inflight(r, st.config, p.claim_seconds)
            room = max(0, math.ceil((p.max_unexported_games - new) / p.games_per_task) - flying)
            blocked = None
            if room == 0:
                blocked = (
                    f"backpressure: {new} unexported games and {flying} tasks in flight "
                    f"reach the bound of {p.max_unexported_games} games"
                )
            rows.append((st, priority(sig), new, flying, room, blocked))
        prios = [row[1] for row in rows]
        share = shares(prios)
        wanted = targets(share, slots)
        for st, prio, *_ in rows:
            reason = change_reason(st.priority, st.target, prio.value, wanted[st.config])
            if reason is not None and record:
                st.priority, st.target = prio.value, wanted[st.config]
                s.add(
                    ScheduleChange(
                        config=st.config,
                        kind="target",
                        priority=prio.value,
                        share=share[st.config],
                        target=wanted[st.config],
                        exploration=st.exploration,
                        reason=f"{reason}; {prio.explain()}",
                    )
                )
        s.flush()
        newest = select(func.max(ScheduleChange.id)).group_by(ScheduleChange.config)
        latest = select(ScheduleChange.config, ScheduleChange.reason).where(
            ScheduleChange.id.in_(newest)
        )
        last = {config: reason for config, reason in s.execute(latest)}
        schedules = [
            ConfigSchedule(
                st.config,
                prio,
                share[st.config],
                int(st.target or 0),
                wanted[st.config],
                flying,
                new,
                blocked,
                st.exploration,
                last.get(st.config),
            )
            for st, prio, new, flying, _room, blocked in rows
        ]
        open_ = {c.config: c for c in schedules if c.blocked is None}
        since = waited(r)
        picks = allocate(
            sum(free.values()),
            {c: max(1, o.target) for c, o in open_.items()},
            {c: o.inflight for c, o in open_.items()},
            {c: o.priority.value for c, o in open_.items()},
            {row[0].config: row[4] for row in rows},
            {c: since.get(c, NEVER_SENT_S) for c in open_},
        )
        queue_places = [q for q, n in sorted(free.items()) for _ in range(n)]
        tasks = []
        by_config = {st.config: st for st, *_ in rows}
        for config, queue in zip(picks, queue_places, strict=False):
            st = by_config[config]
            p = preset(st.preset, config)
            tasks.append(
                SelfplayTask(
                    config,
                    st.generation,
                    "b" + secrets.token_hex(4),
                    p.games_per_task,
                    current_best(s, st),
                    p.name,
                    st.exploration,
                    queue,
                )
            )
    return tasks, schedules


def explain_schedule() -> list[dict[str, Any]]:
    """Every enabled configuration's schedule as the next tick would compute it, written
    nowhere (``ringrift schedule``); needs the broker, for the live queues and tasks in flight."""
    from ringrift.celery import app
    from ringrift.errors import StartupError
    from ringrift.infra.queues import queue_consumers
    from ringrift.infra.service import current, redis_client

    try:
        r = redis_client()
        r.ping()
        consumers = queue_consumers(app, refresh=True)
    except redis.RedisError as e:
        raise StartupError(f"the broker at {app.conf.broker_url} does not answer ({e})") from None
    _, rows = plan(current(), r, {}, slots=2 * sum(consumers.values()), record=False)
    return [row.to_dict() for row in rows]

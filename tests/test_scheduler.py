"""The selfplay scheduler: priorities, shares and targets (pure), the plan of a tick against a real
Redis and a SQLite ledger (hysteresis, backpressure, recorded reasons), and the exploration
feedback loop."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from ringrift.infra.service import Service
from ringrift.pipeline.presets import TINY, preset
from ringrift.pipeline.priority import (
    Signals,
    allocate,
    change_reason,
    priority,
    shares,
    targets,
    velocity,
)
from ringrift.pipeline.rating_table import promoted_ratings, refit, table
from ringrift.pipeline.scheduler import inflight, plan, sent
from ringrift.pipeline.state import adjust_exploration, stop_waiting, waiting_place
from ringrift.store.models import EvaluationMatch, PipelineState, ScheduleChange
from tests.celery_harness import celery_env, run_cli
from tests.ledger_harness import add_model, ledger_service, redis_database

# ----- priorities, shares, targets ----------------------------------------------------------------


def _signals(**kw: object) -> Signals:
    base: dict[str, object] = {
        "config": "square8_2p",
        "weight": 1.0,
        "new_games": 0,
        "games_per_generation": 100,
        "hours_since_promotion": 0.0,
        "stale_hours": 10.0,
        "ratings": [],
    }
    base.update(kw)
    return Signals(**base)  # type: ignore[arg-type]


def test_priority_weighs_deficit_staleness_and_velocity_by_the_curriculum_weight() -> None:
    hungry = priority(_signals())  # no new games, just promoted, no rating history
    assert (hungry.deficit, hungry.staleness, hungry.velocity) == (1.0, 0.0, 0.0)
    assert hungry.value == pytest.approx(6.0)
    fed = priority(_signals(new_games=150, hours_since_promotion=5.0))
    assert (fed.deficit, fed.staleness) == (0.0, 0.5) and fed.value == pytest.approx(3.0)
    never = priority(_signals(hours_since_promotion=math.inf, ratings=[0.0, 100.0, 250.0]))
    assert never.staleness == 1.0 and never.velocity == 1.0 and never.value == pytest.approx(10.0)
    assert priority(_signals(weight=2.5)).value == pytest.approx(15.0)
    assert "deficit 1.00" in hungry.explain() and hungry.explain().endswith("= 6.00")
    with pytest.raises(ValueError):
        priority(_signals(games_per_generation=0))


def test_velocity_is_the_mean_gain_of_the_last_promotions_scaled_to_one() -> None:
    assert velocity([]) == velocity([300.0]) == 0.0
    assert velocity([0.0, 50.0]) == pytest.approx(0.5)
    # only the last three promotions count: (400 - 250) / 3 per promotion
    assert velocity([0.0, 250.0, 300.0, 350.0, 400.0]) == pytest.approx(0.5)
    assert velocity([400.0, 300.0]) == 0.0  # a loss is no speed, not negative speed


def test_shares_and_targets_follow_priorities_and_fill_every_slot() -> None:
    prios = [
        priority(_signals(config="a")),
        priority(_signals(config="b", weight=2.0)),
        priority(_signals(config="c", weight=0.1)),
    ]
    share = shares(prios)
    assert sum(share.values()) == pytest.approx(1.0)
    assert share["b"] == pytest.approx(2 * share["a"])
    target = targets(share, 10)
    assert sum(target.values()) == 10
    assert target["b"] > target["a"] >= 1 and target["c"] == 1  # a small share still plays
    assert targets(share, 0) == {"a": 0, "b": 0, "c": 0}


@pytest.mark.parametrize(
    ("old", "new", "moves"),
    [
        ((None, None), (5.0, 4), "first schedule"),
        ((5.0, 4), (7.0, 4), "priority 5.00 -> 7.00"),
        ((5.0, 4), (6.9, 5), None),  # +1.9 priority, +1 of 4 slots: within the thresholds
        ((5.0, 10), (5.5, 13), "target 10 -> 13"),
        ((5.0, 2), (5.5, 3), "target 2 -> 3 (+50%)"),
        ((5.0, 10), (4.0, 8), None),
    ],
)
def test_targets_move_only_past_the_thresholds(
    old: tuple[float | None, int | None], new: tuple[float, int], moves: str | None
) -> None:
    reason = change_reason(old[0], old[1], new[0], new[1])
    if moves is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(moves)


def test_allocate_fills_below_target_first_then_keeps_every_place_busy_within_room() -> None:
    target = {"a": 3, "b": 1}
    picks = allocate(5, target, {"a": 1, "b": 1}, {"a": 5.0, "b": 8.0}, {"a": 9, "b": 9})
    assert picks[:2] == ["a", "a"]  # a is 2 below its target
    assert len(picks) == 5 and Counter(picks)["b"] >= 1  # then the places still get work
    capped = allocate(5, target, {}, {"a": 5.0, "b": 8.0}, {"a": 1, "b": 0})
    assert capped == ["a"]  # b is at its bound, a has room for one more


def test_a_lower_priority_that_has_waited_long_enough_goes_before_a_higher_one() -> None:
    target = {"big": 1, "small": 1, "other": 1}
    prio = {"big": 8.0, "small": 6.0, "other": 6.0}
    room = dict.fromkeys(target, 9)
    # one place frees at a time: the higher priority wins while the waits are alike
    assert allocate(1, target, {}, prio, room, {"big": 10, "small": 10, "other": 5}) == ["big"]
    # but not for good: six tenths of big's priority that has waited twice as long goes first
    assert allocate(1, target, {}, prio, room, {"big": 10, "small": 20, "other": 5}) == ["small"]
    # and a place handed out resets the wait, so the next goes to the next longest weighted wait
    picks = allocate(3, target, {}, prio, room, {"big": 10, "small": 20, "other": 15})
    assert picks == ["small", "other", "big"]


# ----- a tick's plan, against Redis and the ledger ---------------------------------------------


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    with redis_database(redis_url, 10) as client:  # database 10 is this module's
        yield client


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    with ledger_service(tmp_path) as service:
        yield service


def test_the_slot_line_is_first_come_first_served_and_survives_a_concurrent_claim(
    r: redis.Redis,
) -> None:
    assert waiting_place(r, "evaluate", "hex8_2p") == 0
    assert waiting_place(r, "evaluate", "square8_2p") == 1
    assert waiting_place(r, "evaluate", "hex8_2p") == 0  # keeps its place when seen again
    stop_waiting(r, "evaluate", "hex8_2p")  # it got its slot
    assert waiting_place(r, "evaluate", "square8_2p") == 0
    # Another reconcile of square8_2p won the claim and stopped its wait between this one's
    # check and its read of the line: it rejoins instead of failing.
    r.zrem("ringrift:slot-wait:evaluate", "square8_2p")
    assert waiting_place(r, "evaluate", "hex8_2p") == 0
    assert waiting_place(r, "evaluate", "square8_2p") == 1


def _changes(svc: Service) -> list[tuple[str, str]]:
    with svc.session() as s:
        rows = s.scalars(select(ScheduleChange).order_by(ScheduleChange.id))
        return [(c.config, c.reason) for c in rows]


def test_a_tick_plans_selfplay_by_share_records_changes_once_and_honours_backpressure(
    r: redis.Redis, svc: Service
) -> None:
    with svc.session() as s:
        s.add(PipelineState(config="square8_2p", preset="tiny", weight=1.0))
        s.add(PipelineState(config="hex8_2p", preset="tiny", weight=3.0))
        s.add(PipelineState(config="square8_3p", preset="tiny", enabled=False))
        s.add(PipelineState(config="hex8_3p", preset="tiny", generation=2, target_generations=2))

    tasks, schedule = plan(svc, r, {"gpu0": 3, "cpu": 1}, slots=8)
    by = {c.config: c for c in schedule}
    assert set(by) == {"square8_2p", "hex8_2p"}  # disabled and finished ones get nothing
    assert by["hex8_2p"].share == pytest.approx(0.75) and by["hex8_2p"].target == 6
    assert by["square8_2p"].target == 2
    assert len(tasks) == 4 and sorted(t.queue for t in tasks) == ["cpu", "gpu0", "gpu0", "gpu0"]
    assert Counter(t.config for t in tasks) == {"hex8_2p": 3, "square8_2p": 1}
    first = tasks[0]
    assert first.games == TINY.games_per_task and first.model_id is None
    assert first.shard.startswith(f"shard-{first.config}-g0-b") and first.args()[-1] == 0
    reasons = _changes(svc)
    assert [c for c, _ in reasons] == ["hex8_2p", "square8_2p"]
    assert all(reason.startswith("first schedule; weight") for _, reason in reasons)

    # The same ledger again: nothing moves, nothing is written.
    plan(svc, r, {"gpu0": 0}, slots=8)
    assert len(_changes(svc)) == 2

    # A person triples square8_2p's weight: its priority jumps, and the change says so.
    with svc.session() as s:
        st = s.get(PipelineState, "square8_2p")
        assert st is not None
        st.weight = 3.0
    _, schedule = plan(svc, r, {}, slots=8)
    config, reason = _changes(svc)[-1]
    assert config == "square8_2p" and reason.startswith("priority 8.00 -> 24.00")
    assert {c.config: c.target for c in schedule}["square8_2p"] == 4

    # Backpressure: hex8_2p has 16 games in flight, the tiny preset's bound.
    for t in range(4):
        sent(r, tasks[0].__class__("hex8_2p", 0, f"b{t}", 4, None, "tiny", 0, "gpu0"), 600)
    assert inflight(r, "hex8_2p", 600) == 4
    tasks, schedule = plan(svc, r, {"gpu0": 2}, slots=8)
    blocked = {c.config: c.blocked for c in schedule}
    assert blocked["hex8_2p"] is not None and "bound of 16 games" in blocked["hex8_2p"]
    assert [t.config for t in tasks] == ["square8_2p", "square8_2p"]
    assert inflight(r, "hex8_2p", older_than=0) == 0  # entries this old are lost tasks


def test_the_big_boards_get_their_own_numbers_from_the_preset(r: redis.Redis, svc: Service) -> None:
    big, small = preset("tiny", "square19_2p"), preset("tiny", "square8_2p")
    assert small == TINY and preset("tiny", "hexagonal_4p") == big
    assert (big.games_per_generation, big.games_per_task, big.eval_games) == (2, 1, 2)
    assert big.eval_search.simulations < TINY.eval_search.simulations
    assert big.selfplay.search.simulations < TINY.selfplay.search.simulations
    assert (big.arch, big.train_config().arch) == ("b2c32", "b2c32")
    assert preset("default", "square19_2p") == preset("default")

    with svc.session() as s:
        s.add(PipelineState(config="square19_2p", preset="tiny"))
    tasks, schedule = plan(svc, r, {"gpu0": 10}, slots=10)
    assert [t.games for t in tasks] == [1] * 4  # backpressure: 4 unexported games at most
    for task in tasks:
        sent(r, task, big.claim_seconds)
    tasks, schedule = plan(svc, r, {"gpu0": 10}, slots=10)
    assert tasks == [] and "bound of 4 games" in str(schedule[0].blocked)


# ----- the feedback loop ----------------------------------------------------------------------


def _decided(svc: Service, config: str, generation: int, status: str) -> str:
    with svc.session() as s:
        return add_model(s, config, generation, status=status)


def test_exploration_rises_after_patience_rejections_and_falls_after_a_promotion(
    svc: Service,
) -> None:
    config = "square8_2p"
    with svc.session() as s:
        s.add(PipelineState(config=config, preset="tiny"))

    def decide(generation: int, outcome: str) -> int:
        model_id = _decided(svc, config, generation, outcome)
        with svc.session() as s:
            st = s.get(PipelineState, config)
            assert st is not None
            adjust_exploration(s, st, TINY, model_id, outcome)
            return st.exploration

    assert decide(1, "promoted") == 0  # nothing to lower
    assert decide(2, "rejected") == 0  # one rejection is short of the patience (2)
    assert decide(3, "rejected") == 1
    assert decide(4, "rejected") == 1  # a third rejection resets nothing and raises nothing
    assert decide(5, "rejected") == 2
    assert decide(6, "promoted") == 1
    with svc.session() as s:
        rows = list(s.scalars(select(ScheduleChange).order_by(ScheduleChange.id)))
    assert [(c.kind, c.exploration) for c in rows] == [
        ("exploration", 1),
        ("exploration", 2),
        ("exploration", 1),
    ]
    assert rows[0].reason.startswith("2 candidates rejected in a row (patience 2)")
    assert rows[2].reason == f"model-{config}-g6 promoted: exploration lowered"


def test_each_exploration_level_widens_selfplay() -> None:
    calm, wild = TINY.selfplay_settings(4, 0), TINY.selfplay_settings(4, 2)
    assert calm.parallel_games == wild.parallel_games == 4
    assert calm.exploration == TINY.selfplay.exploration
    assert wild.exploration == pytest.approx(2 * TINY.selfplay.exploration)
    assert wild.sample_moves == round(1.5 * TINY.selfplay.sample_moves)


def test_velocity_reads_the_promoted_models_in_the_fitted_table(svc: Service) -> None:
    config = "square8_2p"
    first = _decided(svc, config, 1, "promoted")
    rejected = _decided(svc, config, 2, "rejected")
    second = _decided(svc, config, 3, "promoted")
    with svc.session() as s:
        assert promoted_ratings(s, config) == []  # nothing fitted yet
        matches = ((first, "random", 6), (rejected, first, 4), (second, first, 6))
        for cand, opponent, wins in matches:
            s.add(
                EvaluationMatch(
                    evaluation_id=f"eval-{cand}",
                    config=config,
                    candidate_id=cand,
                    opponent=opponent,
                    games=8,
                    wins=wins,
                    losses=8 - wins,
                    draws=0,
                )
            )
    with svc.session() as s:
        assert refit(s, config) == 4
    with svc.session() as s:
        ratings = promoted_ratings(s, config)
        fitted = {r.model_id: r.rating for r in table(s, config) if r.model_id}
    assert [m for m, _ in ratings] == [first, second]  # oldest first, the rejected one left out
    assert ratings == [(first, fitted[first]), (second, fitted[second])]
    assert 0 < ratings[0][1] < ratings[1][1]


# ----- the command ------------------------------------------------------------------------------


def test_ringrift_schedule_explains_each_share_without_writing_anything(
    redis_url: str, tmp_path: Path
) -> None:
    env = celery_env(redis_url, tmp_path)
    env["RINGRIFT_BROKER_URL"] = f"{redis_url}/11"  # no worker listens: no queue, no slot
    assert run_cli(env, "pipeline", "start", "hex8_2p", "--preset", "tiny").returncode == 0
    weighed = run_cli(env, "pipeline", "start", "hex8_2p", "--weight", "2.5", "--preset", "tiny")
    assert weighed.returncode == 0, weighed.stderr
    refused = run_cli(env, "pipeline", "start", "hex8_2p", "--weight", "0")
    assert refused.returncode == 2 and "weight must be a number above 0" in refused.stderr
    shown = run_cli(env, "schedule", "--explain")
    assert shown.returncode == 0, shown.stderr
    assert "hex8_2p" in shown.stdout
    assert "priority: weight 2.5 x (2 + 4 x deficit 1.00" in shown.stdout
    assert "last change: none recorded" in shown.stdout
    [row] = json.loads(run_cli(env, "schedule", "--json").stdout.strip().splitlines()[-1])
    assert row["config"] == "hex8_2p" and row["priority"] == pytest.approx(20.0)
    assert row["weight"] == 2.5
    assert (row["target"], row["wanted"], row["inflight"]) == (0, 0, 0)
    status = json.loads(run_cli(env, "status", "--json").stdout.strip().splitlines()[-1])
    assert status["schedule_changes"] == []  # looking wrote nothing
    assert status["configs"][0]["exploration"] == 0

    env["RINGRIFT_BROKER_URL"] = "redis://127.0.0.1:1/0"
    refused = run_cli(env, "schedule")
    assert refused.returncode == 2 and "does not answer" in refused.stderr

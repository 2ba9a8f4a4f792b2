"""After a promotion the new best plays the best it replaced again; a clearly worse one is rolled
back by compare-and-set, with its evidence recorded, and is never promoted again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from ringrift.errors import ServiceError
from ringrift.infra.service import Service
from ringrift.pipeline.heartbeat import record_dispatch
from ringrift.pipeline.state import (
    Limits,
    apply_check,
    apply_decision,
    group_for,
    in_flight,
    reconcile,
)
from ringrift.store.models import EvaluationMatch, Model, PipelineState, ScheduleChange
from tests.ledger_harness import add_model, ledger_service, redis_database

CONFIG = "square8_2p"
OLD, NEW = f"model-{CONFIG}-g1", f"model-{CONFIG}-g2"


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    with redis_database(redis_url, 12) as client:  # database 12 is this module's
        yield client


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    with ledger_service(tmp_path) as service:
        yield service


def _promoted(svc: Service) -> None:
    """NEW has just replaced OLD as the best model of CONFIG, at generation 2."""
    with svc.session() as s:
        s.add(PipelineState(config=CONFIG, preset="tiny", enabled=True, generation=2))
        for generation, replaced in ((1, None), (2, OLD)):
            decision = json.dumps({"promote": True, "replaced": replaced})
            add_model(s, CONFIG, generation, status="promoted", decision=decision)
        s.flush()
        st = s.get(PipelineState, CONFIG)
        assert st is not None
        st.best_model_id = NEW


def _check_chunk(svc: Service, wins: int, games: int = 4) -> None:
    with svc.session() as s:
        s.add(
            EvaluationMatch(
                evaluation_id=f"check-{NEW}",
                config=CONFIG,
                candidate_id=NEW,
                opponent=OLD,
                first_game=0,
                games=games,
                wins=wins,
                losses=games - wins,
                draws=0,
                score=float(wins),
                histogram=json.dumps({"1.0": wins, "0.0": games - wins}),
            )
        )


def test_a_new_best_plays_the_best_it_replaced_before_its_generation_goes_on(
    r: redis.Redis, svc: Service
) -> None:
    _promoted(svc)
    [due] = reconcile(svc, r, CONFIG)
    assert due.stage == "check" and due.key == f"{CONFIG}:2:check"
    assert due.detail["matches"] == [[OLD, 0, 4]]
    group = group_for(due)
    [member] = group.members
    assert member.id == f"check-{NEW}/{OLD}@0"
    assert member.args == [CONFIG, NEW, OLD, 4, "tiny", 0, f"check-{NEW}"]
    assert group.callback.args == [CONFIG, 2, NEW, "check"]
    with svc.session() as s:
        st = s.get(PipelineState, CONFIG)
        assert st is not None and st.stage == "checking the new best"
    r.delete(f"ringrift:claim:{due.key}")  # as the chord's callback does once the chunk is in
    _check_chunk(svc, wins=0)
    [verify] = reconcile(svc, r, CONFIG)
    assert verify.stage == "verify" and verify.detail == {"model_id": NEW}


def test_a_check_shares_the_evaluation_slots_and_waits_in_their_line(
    r: redis.Redis, svc: Service
) -> None:
    _promoted(svc)
    r.set("ringrift:claim:hex8_2p:3:evaluate", "another configuration evaluates")
    assert in_flight(svc, r, "check") == 1 == in_flight(svc, r, "evaluate")
    assert reconcile(svc, r, CONFIG, Limits(eval_matches=1)) == []  # no room: it waits
    with svc.session() as s:
        st = s.get(PipelineState, CONFIG)
        assert st is not None and st.stage == "check: waits for a slot"
    assert r.zrange("ringrift:slot-wait:evaluate", 0, -1) == [CONFIG.encode()]
    [due] = reconcile(svc, r, CONFIG, Limits(eval_matches=2))
    assert due.stage == "check" and due.detail["matches"] == [[OLD, 0, 4]]
    assert r.zrange("ringrift:slot-wait:evaluate", 0, -1) == []
    record_dispatch(r, due.key, group_for(due), 600)
    assert in_flight(svc, r, "evaluate") == 2  # its chunk holds an evaluation slot
    _check_chunk(svc, wins=2)
    assert in_flight(svc, r, "evaluate") == 1  # ... until its result is in


def test_a_clearly_worse_new_best_is_rolled_back_with_its_evidence(svc: Service) -> None:
    _promoted(svc)
    _check_chunk(svc, wins=0)
    with svc.session() as s:
        assert apply_check(s, CONFIG, NEW) == "rolled back"
    with svc.session() as s:
        st = s.get(PipelineState, CONFIG)
        model = s.get(Model, NEW)
        assert st is not None and model is not None
        assert st.best_model_id == OLD and model.status == "rolled_back"
        check = json.loads(model.decision or "{}")["check"]
        assert check["outcome"] == "rolled back" and check["games"] == 4
        assert check["score"] == 0 and check["high"] < check["bound"] == 0.5
        [event] = s.scalars(select(ScheduleChange).where(ScheduleChange.kind == "rollback"))
        assert event.config == CONFIG and f"{NEW} scored 0.000 over 4 games" in event.reason
        assert apply_check(s, CONFIG, NEW) == "already checked"
        # never promoted again: only a candidate is decided, and this one is not
        assert apply_decision(s, CONFIG, 2, NEW) == "already decided"
        assert s.get(PipelineState, CONFIG).best_model_id == OLD  # type: ignore[union-attr]


def test_a_new_best_that_holds_its_own_is_kept(svc: Service) -> None:
    _promoted(svc)
    _check_chunk(svc, wins=1)  # 1 of 4: its interval reaches past 0.5, not clearly worse
    with svc.session() as s:
        assert apply_check(s, CONFIG, NEW) == "kept"
        model = s.get(Model, NEW)
        assert model is not None and model.status == "promoted"
        assert json.loads(model.decision or "{}")["check"]["outcome"] == "kept"
        assert s.get(PipelineState, CONFIG).best_model_id == NEW  # type: ignore[union-attr]


def test_a_rollback_never_overwrites_a_best_that_moved_on(svc: Service) -> None:
    _promoted(svc)
    _check_chunk(svc, wins=0)
    with svc.session() as s:
        st = s.get(PipelineState, CONFIG)
        assert st is not None
        st.best_model_id = OLD  # something else moved the pointer meanwhile
    with svc.session() as s:
        assert apply_check(s, CONFIG, NEW) == "kept: the best moved on"
        assert s.get(PipelineState, CONFIG).best_model_id == OLD  # type: ignore[union-attr]


def test_a_check_not_all_recorded_is_refused(svc: Service) -> None:
    _promoted(svc)
    _check_chunk(svc, wins=0, games=2)
    with svc.session() as s, pytest.raises(ServiceError, match="not all recorded"):
        apply_check(s, CONFIG, NEW)

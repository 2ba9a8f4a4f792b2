"""Fenced leases: one holder at a time, a lapsed holder cannot write, the ledger compares tokens."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from ringrift.pipeline.lease import Lease, LeaseLost
from ringrift.pipeline.runs import claim, finish
from ringrift.store import migrate
from ringrift.store.db import database_url, make_engine, session_factory
from ringrift.store.models import Artifact, Model, PipelineState, TrainingRun
from tests.training_fixtures import FAST
from training.checkpoint import list_checkpoints
from training.loop import train


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    r = redis.Redis.from_url(f"{redis_url}/5")
    r.flushdb()
    return r


def test_one_holder_at_a_time_and_tokens_only_grow(client: redis.Redis) -> None:
    first = Lease(client, "run-a", 30)
    second = Lease(client, "run-a", 30)
    assert first.acquire()
    assert not second.acquire()
    first.renew()
    first.release()
    assert second.acquire() and second.token > first.token
    with pytest.raises(LeaseLost):
        first.renew()  # released, and now someone else's


def test_a_lapsed_holder_loses_the_right_to_write(client: redis.Redis) -> None:
    stale = Lease(client, "run-b", 1)
    assert stale.acquire()
    time.sleep(1.3)
    fresh = Lease(client, "run-b", 30)
    assert fresh.acquire() and fresh.token > stale.token
    with pytest.raises(LeaseLost):
        stale.renew()
    stale.release()  # must not release the new holder's lease
    assert client.get(fresh.key) == str(fresh.token).encode()


def test_tokens_stay_above_the_ledgers_after_redis_loses_its_data(client: redis.Redis) -> None:
    holder = Lease(client, "run-c", 30)
    assert holder.acquire()
    client.flushdb()  # a restart without persistence: the lease and its counter are gone
    holder.renew()  # nobody took over: the holder takes its key back and keeps writing
    assert client.get(holder.key) == str(holder.token).encode()
    client.flushdb()
    newcomer = Lease(client, "run-c", 30)
    assert newcomer.acquire(floor=holder.token)  # the ledger's token, read before acquiring
    assert newcomer.token == holder.token + 1
    with pytest.raises(LeaseLost):
        holder.renew()  # a newer token exists: the old holder may not take the key back


def test_a_vanished_lease_is_not_retaken_over_a_newer_token(client: redis.Redis) -> None:
    old = Lease(client, "run-d", 30)
    assert old.acquire()
    new = Lease(client, "run-d", 30)
    client.delete(old.key)
    assert new.acquire() and new.token > old.token
    client.delete(new.key)  # the new holder's key lapses too
    with pytest.raises(LeaseLost):
        old.renew()
    new.renew()
    assert client.get(new.key) == str(new.token).encode()


def test_ledger_refuses_a_stale_token(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    migrate(url)
    sessions = session_factory(make_engine(url))
    with sessions() as s:
        s.add(
            Artifact(
                id="dataset-x", kind="dataset", path="dataset/dataset-x", sha256="0" * 64, size=1
            )
        )
        s.add(PipelineState(config="square8_2p"))
        s.flush()
        s.add(
            TrainingRun(
                id="run-x",
                config="square8_2p",
                generation=0,
                dataset_artifact_id="dataset-x",
                total_steps=10,
            )
        )
        s.add(
            Model(
                id="model-x",
                config="square8_2p",
                generation=1,
                architecture="b1c16",
                encoder_version=1,
                artifact_id="dataset-x",
            )
        )
        s.commit()
        assert claim(s, "run-x", 5)
        assert claim(s, "run-x", 7)  # a newer holder takes over
        assert not claim(s, "run-x", 6)  # an older one cannot come back
        assert not finish(s, "run-x", 5, "model-x", 10, 1.0)  # the stale holder's finish
        s.commit()
        run = s.get(TrainingRun, "run-x")
        assert run is not None and run.status == "running" and run.lease_token == 7
        assert finish(s, "run-x", 7, "model-x", 10, 1.0)


def test_training_stops_before_writing_when_the_guard_refuses(
    dataset: Path, tmp_path: Path
) -> None:
    def lost() -> None:
        raise LeaseLost("gone")

    with pytest.raises(LeaseLost):
        train(
            FAST.replace(steps=20),
            dataset,
            tmp_path / "model.pt",
            board="square8",
            checkpoint_dir=tmp_path / "ckpt",
            guard=lost,
        )
    assert list_checkpoints(tmp_path / "ckpt") == []
    assert not (tmp_path / "model.pt").exists()

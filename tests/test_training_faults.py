"""Training under faults, with real worker processes: kill -9 mid-run, two deliveries at once,
a stale lease holder, cancel and resume, a corrupted newest checkpoint.

Runs are short (b2c32, a few hundred steps) and train in 3-second segments, so every test also
crosses several segment hand-offs. Leases last 4 s, so a dead worker's run is taken up by the
beat tick after about three lease periods.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from ringrift.ai.dataset import write_dataset
from ringrift.pipeline.lease import Lease
from ringrift.pipeline.quarantine import quarantine_rows
from ringrift.pipeline.state import dataset_name, run_name, shard_name
from ringrift.store.models import Checkpoint, Model, PipelineState, TrainingRun
from tests.celery_harness import wait_for_worker, worker
from tests.pipeline_fixtures import Pipe, live_pipeline, play_shard, scratch_dir
from training.checkpoint import checkpoint_path
from training.config import TrainConfig

CONFIG = "square8_2p"
TRAIN = "ringrift.train.train_model"
TICK = "ringrift.pipeline.tick"
LEASE_S = 4
INTERVAL = 20  # checkpoint_every
RUN_CONFIG = TrainConfig.tiny().replace(
    arch="b2c32",
    batch_size=32,
    steps=500,
    checkpoint_every=INTERVAL,
    keep_checkpoints=3,
    augment=True,  # a random symmetry per sample, as the pipeline trains
)
WORKER_ENV = {
    "RINGRIFT_TRAIN_LEASE_SECONDS": str(LEASE_S),
    "RINGRIFT_TRAIN_SEGMENT_SECONDS": "3",
}


@pytest.fixture(scope="module")
def pipe(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipe]:
    """A ledger at generation 0 with its games collected and its dataset exported (in this
    process, as the pipeline's tasks would have), and no workers: each test starts its own."""
    with live_pipeline(redis_url, tmp_path_factory.mktemp("faults"), queues=()) as p:
        p.add(PipelineState(config=CONFIG, preset="tiny", enabled=False))
        work = scratch_dir(p)
        games = play_shard(work / "shard.bin", CONFIG, list(range(8)), "faults")
        p.put_artifact("shard", work / "shard.bin", shard_name(CONFIG, 0, "n0", 0), CONFIG)
        write_dataset(games, work / "data.npz", "square8", augment=False)  # as export does
        p.put_artifact("dataset", work / "data.npz", dataset_name(CONFIG, 0), CONFIG)
        yield p


def add_run(pipe: Pipe, generation: int, config: TrainConfig = RUN_CONFIG) -> str:
    run_id = run_name(CONFIG, generation)
    pipe.add(
        TrainingRun(
            id=run_id,
            config=CONFIG,
            generation=generation,
            dataset_artifact_id=dataset_name(CONFIG, 0),
            init_model_id=None,
            status="pending",
            total_steps=config.steps,
            train_config=config.to_json(),
        )
    )
    return run_id


@contextlib.contextmanager
def train_worker(
    pipe: Pipe, queue: str, name: str, concurrency: int = 1, **env_changes: str
) -> Iterator[Any]:
    env = {**pipe.env, **WORKER_ENV, "RINGRIFT_CACHE_NAME": name, **env_changes}
    with worker(env, queue, name, pipe.log_dir, concurrency) as proc:
        wait_for_worker(queue, timeout=90)
        yield proc


def run_row(pipe: Pipe, run_id: str) -> TrainingRun:
    with pipe.svc.session() as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None
        s.expunge(run)
        return run


def checkpoint_steps(pipe: Pipe, run_id: str) -> list[int]:
    with pipe.svc.session() as s:
        return sorted(s.scalars(select(Checkpoint.step).where(Checkpoint.run_id == run_id)))


def models_of(pipe: Pipe, run_id: str) -> int:
    with pipe.svc.session() as s:
        count = s.scalar(
            select(func.count()).select_from(Model).where(Model.training_run_id == run_id)
        )
        return int(count or 0)


def wait_until(what: str, ok: Callable[[], bool], timeout: float, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(poll)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def resumes(log: str, run_id: str) -> list[int]:
    """Steps the worker's log says a segment of ``run_id`` resumed from, in order."""
    folder = re.escape(f"runs/{run_id}/")
    return [int(m) for m in re.findall(folder + r"ckpt_\d+\.pt at step (\d+) of", log)]


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 the worker and its pool children at once: nothing gets to clean up."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def set_enabled(pipe: Pipe, enabled: bool) -> None:
    with pipe.svc.session() as s:
        st = s.get(PipelineState, CONFIG)
        assert st is not None
        st.enabled = enabled


def usable_checkpoints(pipe: Pipe, run_id: str) -> list[int]:
    """Steps of the checkpoint files on disk that the ledger recorded."""
    folder = pipe.store_root / "runs" / run_id
    on_disk = {int(p.stem.split("_")[1]) for p in folder.glob("ckpt_*.pt")}
    return sorted(on_disk & set(checkpoint_steps(pipe, run_id)))


def ringrift_cli(pipe: Pipe, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringrift.cli", *args],
        env=pipe.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kill_9_mid_run_resumes_from_the_newest_checkpoint(pipe: Pipe) -> None:
    run_id = add_run(pipe, 0)
    with train_worker(pipe, "gpu0", "doomed") as doomed:
        pipe.send(TRAIN, run_id, 0, queue="gpu0")
        wait_until("three checkpoints", lambda: len(checkpoint_steps(pipe, run_id)) >= 3, 240)
        kill_group(doomed)
    at_death = run_row(pipe, run_id)
    newest = usable_checkpoints(pipe, run_id)[-1]
    assert at_death.status == "running" and at_death.step < RUN_CONFIG.steps
    assert models_of(pipe, run_id) == 0
    assert abs(at_death.step - newest) < INTERVAL  # what it had reported vs what it had saved
    shown = ringrift_cli(pipe, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    training = json.loads(shown.stdout)["configs"][0]["training"]
    assert training["run"] == run_id and training["step"] == at_death.step
    assert training["samples_per_s"] > 0 and training["eta_s"] > 0

    set_enabled(pipe, True)  # the beat tick may start this configuration's due work
    try:
        # one-second segments: the rest of the run (over 400 steps, about 5 s here) hands on
        with train_worker(pipe, "gpu0", "rescuer", RINGRIFT_TRAIN_SEGMENT_SECONDS="1"):
            # Nobody redelivers a kill -9'd message within the test (Redis's visibility
            # timeout is 2 h): the beat tick starts the run again once its lease and claim lapse.
            def taken_up() -> bool:
                pipe.run(TICK, queue="gpu0", timeout=60)
                return run_row(pipe, run_id).lease_token != at_death.lease_token

            wait_until("the tick to restart the run", taken_up, 120, poll=1.0)
            set_enabled(pipe, False)  # no evaluation after it: this test is about training
            wait_until("the run to finish", lambda: run_row(pipe, run_id).status == "done", 180)
            log = pipe.worker_log("rescuer")
    finally:
        set_enabled(pipe, False)
    done = run_row(pipe, run_id)
    assert done.step == RUN_CONFIG.steps and done.result_model_id is not None
    assert models_of(pipe, run_id) == 1
    steps = resumes(log, run_id)
    assert steps, f"the rescuing worker never resumed {run_id}"
    assert steps[0] == newest > 0  # from the newest checkpoint: less than one interval lost
    assert at_death.step - steps[0] < INTERVAL
    assert done.segment > at_death.segment  # the rescued run crossed segment hand-offs


def test_two_deliveries_at_once_one_refuses(pipe: Pipe) -> None:
    run_id = add_run(pipe, 1, RUN_CONFIG.replace(steps=200))
    with train_worker(pipe, "gpu1", "pair", concurrency=2):
        first = pipe.send(TRAIN, run_id, queue="gpu1")
        second = pipe.send(TRAIN, run_id, queue="gpu1")
        results = [first.get(timeout=120), second.get(timeout=120)]
        skipped = [r for r in results if r.get("skipped") == "running elsewhere"]
        assert len(skipped) == 1, results
        # a limit, not a timing: the suite's other files run beside this one
        wait_until("the run to finish", lambda: run_row(pipe, run_id).status == "done", 300)
    assert models_of(pipe, run_id) == 1


def test_a_stale_lease_holder_cannot_write(pipe: Pipe) -> None:
    run_id = add_run(pipe, 2)
    client = redis.Redis.from_url(pipe.env["RINGRIFT_BROKER_URL"])
    # one long segment: the delivery watched below is the one that trains throughout
    with train_worker(pipe, "gpu2", "stale", RINGRIFT_TRAIN_SEGMENT_SECONDS="120"):
        result = pipe.send(TRAIN, run_id, queue="gpu2")
        wait_until("a checkpoint", lambda: bool(checkpoint_steps(pipe, run_id)), 90)
        # The holder's lease lapses (as after a long stall) and another process takes it.
        stale_token = run_row(pipe, run_id).lease_token
        client.delete(f"ringrift:lease:{run_id}")
        usurper = Lease(client, run_id, 600)
        assert usurper.acquire() and stale_token is not None and usurper.token > stale_token
        with pipe.svc.session() as s:
            row = s.get(TrainingRun, run_id)
            assert row is not None
            row.lease_token = usurper.token  # the new holder's claim, as its task would record
        outcome = result.get(timeout=60, propagate=False)
        assert result.state == "FAILURE" and type(outcome).__name__ == "LeaseLost", outcome
        with pipe.svc.session() as s:
            tokens = set(
                s.scalars(select(Checkpoint.lease_token).where(Checkpoint.run_id == run_id))
            )
        assert tokens == {stale_token}  # nothing recorded after the takeover
        assert models_of(pipe, run_id) == 0
        assert run_row(pipe, run_id).lease_token == usurper.token
        # The usurper goes away; a fresh delivery finishes the run from the stale holder's work.
        usurper.release()
        with pipe.svc.session() as s:
            row = s.get(TrainingRun, run_id)
            assert row is not None
            segment = row.segment
        pipe.send(TRAIN, run_id, segment, queue="gpu2")
        wait_until("the run to finish", lambda: run_row(pipe, run_id).status == "done", 180)
        log = pipe.worker_log("stale")
    assert models_of(pipe, run_id) == 1
    assert resumes(log, run_id)[-1] > 0


def test_cancel_checkpoints_and_stops_then_resume_survives_a_corrupt_checkpoint(
    pipe: Pipe,
) -> None:
    run_id = add_run(pipe, 3)
    with train_worker(pipe, "gpu3", "cancel"):
        pipe.send(TRAIN, run_id, queue="gpu3")
        wait_until("two checkpoints", lambda: len(checkpoint_steps(pipe, run_id)) >= 2, 90)
        asked = ringrift_cli(pipe, "train", "cancel", run_id)
        assert asked.returncode == 0, asked.stderr
        wait_until("the cancel", lambda: run_row(pipe, run_id).status == "cancelled", 60)
        cancelled = run_row(pipe, run_id)
        assert cancelled.step < RUN_CONFIG.steps and models_of(pipe, run_id) == 0
        kept = checkpoint_steps(pipe, run_id)
        assert cancelled.step == kept[-1]  # it checkpointed where it stopped
        again = ringrift_cli(pipe, "train", "cancel", run_id)
        assert again.returncode == 2 and "cancelled" in again.stderr

        # Flip bytes in the newest checkpoint: its checksum no longer matches the ledger.
        newest = checkpoint_path(pipe.store_root / "runs" / run_id, kept[-1])
        data = bytearray(newest.read_bytes())
        data[len(data) // 2] ^= 0xFF
        newest.write_bytes(bytes(data))
        on_disk = sorted(int(p.stem.split("_")[1]) for p in newest.parent.glob("ckpt_*.pt"))
        fallback = on_disk[-2]

        seen = len(pipe.worker_log("cancel"))
        resumed = ringrift_cli(pipe, "train", "resume", run_id)
        assert resumed.returncode == 0, resumed.stderr
        assert run_row(pipe, run_id).status == "pending"
        pipe.send(TRAIN, run_id, run_row(pipe, run_id).segment, queue="gpu3")
        wait_until("the run to finish", lambda: run_row(pipe, run_id).status == "done", 180)
        log = pipe.worker_log("cancel")[seen:]
    assert models_of(pipe, run_id) == 1
    assert f"ckpt_{kept[-1]:08d}.pt (step {kept[-1]}) is unusable" in log
    assert resumes(log, run_id)[0] == fallback
    # The damaged file was moved out of the run's folder, kept as found, with its reason.
    with pipe.svc.session() as s:
        [row] = quarantine_rows(s)
    assert row["artifact_id"] == f"{run_id}@{kept[-1]}" and row["kind"] == "checkpoint"
    assert "sha256" in str(row["reason"]) and "training resumes" in str(row["outcome"])
    assert (pipe.store_root / str(row["moved_to"])).read_bytes() == bytes(data)


def test_a_worker_with_two_ranks_trains_its_segments_with_ddp(pipe: Pipe) -> None:
    """RINGRIFT_TRAIN_RANKS=2: every segment runs under torchrun (Gloo on this CPU), rank 0
    writing the ledger under the task's lease, and segments still hand on to each other."""
    steps = 240  # about 4 s of training on 2 ranks here: at least two 1-second segments
    run_id = add_run(pipe, 4, RUN_CONFIG.replace(steps=steps))
    env = {"RINGRIFT_TRAIN_RANKS": "2", "RINGRIFT_TRAIN_SEGMENT_SECONDS": "1"}
    with train_worker(pipe, "gpu4", "ddp", **env):
        pipe.send(TRAIN, run_id, queue="gpu4")
        try:
            wait_until("the run to finish", lambda: run_row(pipe, run_id).status == "done", 240)
        except TimeoutError as exc:  # say where it stood: the worker's log and torchrun's output
            outputs = [f"{p}:\n{p.read_text()[-3000:]}" for p in pipe.data_dir.rglob("ddp.*")]
            tail = pipe.worker_log("ddp")[-6000:]
            raise AssertionError("\n".join([str(exc), tail, *outputs])) from None
        log = pipe.worker_log("ddp")
    done = run_row(pipe, run_id)
    assert done.step == steps and models_of(pipe, run_id) == 1
    trained_on = re.findall(rf"{run_id}: segment (\d+) trained on (\d+) ranks", log)
    assert trained_on and all(n == "2" for _, n in trained_on)
    assert len(trained_on) == done.segment + 1  # every segment, and each handed on
    assert done.segment >= 1
    assert usable_checkpoints(pipe, run_id)[-1] == steps

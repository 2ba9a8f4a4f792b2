"""The faults ``ringrift bench faults`` injects into a running loop, each against real processes.

A fault waits for its moment (a worker log saying the stage's task was received, or the loop
reaching a stage), strikes (SIGKILL of that worker and its pool children, then a fresh worker,
as a supervisor starts one; or Redis killed and started again empty; or the broker away for
30 s), and the loop must then finish its generations with nothing lost and nothing done twice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ringrift.chaos.cluster import QUEUES, Cluster, wait_until
from ringrift.store import ArtifactStore

# the task each stage runs (decide: the gate's promote_model; promote: the new best's check,
# verify_promotion; broadcast: the new best sent to every worker)
STAGE_TASKS = {
    "selfplay": "ringrift.selfplay.play_games",
    "collect": "ringrift.sync.collect",
    "export": "ringrift.export.build_dataset",
    "train": "ringrift.train.train_model",
    "evaluate": "ringrift.evaluate.play_match",
    "decide": "ringrift.promote.promote_model",
    "promote": "ringrift.promote.verify_promotion",
    "broadcast": "ringrift.sync.broadcast_model",
}
# how long after a task is received its worker is killed: long tasks are hit mid-way, short
# ones at once
STRIKE_DELAY = {"selfplay": 0.5, "evaluate": 0.5, "export": 0.2}
OUTAGE_SECONDS = 30.0


@dataclass
class Strike:
    """What a fault did: whether it struck, and a line saying when and how. ``check``, when a
    fault has something of its own to audit once the loop finished, counts what it lost."""

    struck: bool
    detail: str
    check: Callable[[Cluster], dict[str, int]] | None = field(default=None, repr=False)


Fault = Callable[[Cluster, float], Strike]


def _received(task: str) -> re.Pattern[str]:
    return re.compile(rf"Task {re.escape(task)}\[[0-9a-f-]+\] received")


def _wait_for_task(c: Cluster, task: str, deadline: float) -> str | None:
    """The worker (``worker-<queue>``) whose log next says it received ``task``; None if the
    deadline passes or the loop finished first (``Cluster.finished``)."""
    pattern = _received(task)
    seen = {f"worker-{q}": len(pattern.findall(c.log_text(f"worker-{q}"))) for q in QUEUES}
    while time.monotonic() < deadline and not c.finished.is_set():
        for name, before in seen.items():
            if len(pattern.findall(c.log_text(name))) > before:
                return name
        time.sleep(0.05)
    return None


def kill_worker_in(stage: str) -> Fault:
    """SIGKILL the worker that runs ``stage``'s task, as soon as it receives it."""
    task = STAGE_TASKS[stage]

    def strike(c: Cluster, deadline: float) -> Strike:
        name = _wait_for_task(c, task, deadline)
        if name is None:
            return Strike(False, f"no worker received {task}")
        time.sleep(STRIKE_DELAY.get(stage, 0.0))
        c.kill(name)
        return Strike(True, f"SIGKILL {name} running {task}")

    return strike


RESUMED = re.compile(r"resuming from \S*runs/(?P<run>[^/\s]+)/ckpt_\d+\.pt at step (?P<step>\d+)")
LOST_TRAINING = "training resumed from before its newest checkpoint"


def _checkpointed_run(c: Cluster, deadline: float) -> tuple[str, int, int] | None:
    """The running training run once it has recorded a checkpoint: (run id, the step it last
    reported, its newest checkpoint's step); None if the deadline passes first."""
    from sqlalchemy import func, select

    from ringrift.store.models import Checkpoint, TrainingRun

    svc = c.service()
    while time.monotonic() < deadline and not c.finished.is_set():
        with svc.session() as s:
            newest = (
                select(TrainingRun.id, TrainingRun.step, func.max(Checkpoint.step))
                .join(Checkpoint, Checkpoint.run_id == TrainingRun.id)
                .where(TrainingRun.status == "running")
                .group_by(TrainingRun.id, TrainingRun.step)
            )
            row = s.execute(newest).first()
        if row is not None:
            return str(row[0]), int(row[1]), int(row[2])
        time.sleep(0.05)
    return None


def kill_mid_training(c: Cluster, deadline: float) -> Strike:
    """SIGKILL the worker training a candidate once its run has recorded a checkpoint. After
    the loop, the worker logs must show the run resumed from that checkpoint or a newer one:
    what the kill cost is at most one checkpoint interval of training."""
    name = _wait_for_task(c, STAGE_TASKS["train"], deadline)
    if name is None:
        return Strike(False, f"no worker received {STAGE_TASKS['train']}")
    found = _checkpointed_run(c, deadline)
    if found is None:
        return Strike(False, "the training run recorded no checkpoint before it ended")
    run_id, reported, newest = found
    seen = {w: len(c.log_text(w)) for w in (f"worker-{q}" for q in QUEUES)}
    c.kill(name)

    def check(c: Cluster) -> dict[str, int]:
        after = "".join(c.log_text(w)[n:] for w, n in seen.items())
        resumed = [int(m["step"]) for m in RESUMED.finditer(after) if m["run"] == run_id]
        first = resumed[0] if resumed else 0  # no resume line: it started again from step 0
        return {LOST_TRAINING: int(first < newest)}

    return Strike(
        True,
        f"SIGKILL {name} training {run_id} at step {reported}, its newest checkpoint at step "
        f"{newest}",
        check,
    )


def kill_beat(c: Cluster, deadline: float) -> Strike:
    """SIGKILL beat as the next selfplay task starts, then start it again."""
    if _wait_for_task(c, STAGE_TASKS["selfplay"], deadline) is None:
        return Strike(False, "no selfplay task started")
    c.kill("beat")
    return Strike(True, "SIGKILL beat during selfplay")


def restart_redis_empty(c: Cluster, deadline: float) -> Strike:
    """Kill Redis as a training finishes and evaluation is about to start (where the loop once
    stood still for good) and start it again with nothing in it."""
    if _wait_for_task(c, STAGE_TASKS["train"], deadline) is None:
        return Strike(False, "training never started")
    time.sleep(2.0)
    c.kill_redis()
    time.sleep(1.0)
    c.start_redis()
    return Strike(True, "Redis SIGKILLed mid-training and started again empty")


def broker_away(c: Cluster, deadline: float) -> Strike:
    """Redis stopped (SIGSTOP: it answers nothing) for 30 s as a selfplay task starts, then
    let go: the workers and beat must carry on by themselves."""
    import os
    import signal

    if _wait_for_task(c, STAGE_TASKS["selfplay"], deadline) is None:
        return Strike(False, "no selfplay task started")
    assert c.redis is not None and c.redis.proc is not None
    os.kill(c.redis.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(OUTAGE_SECONDS)
    finally:
        os.kill(c.redis.proc.pid, signal.SIGCONT)
    return Strike(True, f"Redis unreachable for {OUTAGE_SECONDS:g} s during selfplay")


DATABASE_DOWN_SECONDS = 8.0
DISK_FULL_SECONDS = 10.0


def restart_postgres(c: Cluster, deadline: float) -> Strike:
    """The ledger's PostgreSQL restarts as an evaluation chunk plays (and the tick, selfplay
    and collect write): every connection is closed and new ones are refused for a while."""
    if c.proxy is None:
        return Strike(False, "the ledger is not PostgreSQL")
    if _wait_for_task(c, STAGE_TASKS["evaluate"], deadline) is None:
        return Strike(False, "no evaluation started")
    time.sleep(1.5)
    c.proxy.cut(DATABASE_DOWN_SECONDS)
    return Strike(True, f"PostgreSQL connections cut and refused for {DATABASE_DOWN_SECONDS:g} s")


def fill_disk(c: Cluster, deadline: float) -> Strike:
    """The data dir's disk fills as an export starts, and is freed a while later."""
    if _wait_for_task(c, STAGE_TASKS["export"], deadline) is None:
        return Strike(False, "no export started")
    ballast = c.data_dir / "ballast"
    with open(ballast, "wb") as f:
        block = b"\0" * (1 << 20)
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError:
            pass
    time.sleep(DISK_FULL_SECONDS)
    said = sum(c.log_text(f"worker-{q}").count("No space left on device") for q in QUEUES)
    ballast.unlink()
    return Strike(said > 0, f"disk full for {DISK_FULL_SECONDS:g} s; {said} 'No space left' errors")


NOT_REBUILT = "models set aside and not written again"


def corrupt_model(c: Cluster, deadline: float) -> Strike:
    """A byte of a newly trained candidate flipped in the store as soon as it is recorded
    (and this machine's cached copy gone, as on a worker new to it): the first task to load
    it must set it aside and write it again from its run's final checkpoint, byte for byte,
    or the loop cannot evaluate it."""
    from sqlalchemy import select

    from ringrift.store.models import Artifact, Model

    svc = c.service()

    def models() -> set[str]:
        with svc.session() as s:
            return set(s.scalars(select(Model.id)))

    known = models()
    while time.monotonic() < deadline and not c.finished.is_set():
        new = sorted(models() - known)
        if new:
            break
        time.sleep(0.05)
    else:
        return Strike(False, "no candidate was trained")
    with svc.session() as s:
        model = s.get(Model, new[0])
        artifact = s.get(Artifact, model.artifact_id) if model is not None else None
        if artifact is None:
            return Strike(False, f"{new[0]} has no weights recorded")
        model_id, artifact_id, rel = new[0], artifact.id, artifact.path
    stored = svc.store.root / rel if isinstance(svc.store, ArtifactStore) else None
    if stored is None:
        return Strike(False, "the store is not a folder on this machine")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    (svc.cache.root / rel).unlink(missing_ok=True)

    def check(c: Cluster) -> dict[str, int]:
        from ringrift.store.models import QuarantinedArtifact

        with c.service().session() as s:
            outcomes = list(
                s.scalars(
                    select(QuarantinedArtifact.outcome).where(
                        QuarantinedArtifact.artifact_id == artifact_id
                    )
                )
            )
        return {NOT_REBUILT: int(not any(o.startswith("rebuilt") for o in outcomes))}

    return Strike(True, f"flipped a byte of {model_id}'s weights in the store", check)


FAULTS: dict[str, Fault] = {
    **{f"kill-{stage}": kill_worker_in(stage) for stage in STAGE_TASKS},
    "kill-train": kill_mid_training,
    "kill-beat": kill_beat,
    "redis-restart": restart_redis_empty,
    "broker-away": broker_away,
    "postgres-restart": restart_postgres,
    "disk-full": fill_disk,
    "corrupt-model": corrupt_model,
}
DESCRIPTIONS = {
    **{f"kill-{stage}": f"kill -9 of the worker running {stage}" for stage in STAGE_TASKS},
    "kill-train": "kill -9 of the worker training, past a checkpoint",
    "kill-beat": "kill -9 of beat",
    "redis-restart": "Redis killed and restarted empty",
    "broker-away": f"broker unreachable {OUTAGE_SECONDS:g} s",
    "postgres-restart": f"PostgreSQL down {DATABASE_DOWN_SECONDS:g} s",
    "disk-full": f"data dir's disk full {DISK_FULL_SECONDS:g} s",
    "corrupt-model": "a new candidate's weights corrupted in the store",
}
# what a fault needs of the run: a PostgreSQL ledger, a data dir of its own small disk
NEEDS_POSTGRES = {"postgres-restart"}
NEEDS_SMALL_DISK = {"disk-full"}


def wait_done(c: Cluster, config: str, timeout: float) -> bool:
    """Whether ``config``'s loop reached its target (its last new best checked) in time."""
    from ringrift.pipeline.state import is_done
    from ringrift.store.models import PipelineState

    svc = c.service()

    def done() -> bool:
        with svc.session() as s:
            st = s.get(PipelineState, config)
            return st is not None and is_done(s, st)

    return wait_until(done, timeout, every=1.0)

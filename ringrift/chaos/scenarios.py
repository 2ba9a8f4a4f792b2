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
from pathlib import Path

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
    """The running training run once its newest recorded checkpoint is in place: (run id, the
    step it last reported, that checkpoint's step); None if the deadline passes first.

    A checkpoint is recorded in the ledger just before its file is renamed into place (so no
    file exists without its record): a kill between the two leaves the run only the checkpoint
    before. The fault waits for the file, so that what it checks afterwards, a resume from that
    checkpoint or a newer one, is what the trainer owed."""
    from sqlalchemy import func, select

    from ringrift.store.models import Checkpoint, TrainingRun
    from training.checkpoint import checkpoint_path

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
            run_id, reported, step = str(row[0]), int(row[1]), int(row[2])
            if checkpoint_path(svc.working_dir("runs", run_id), step).is_file():
                return run_id, reported, step
        time.sleep(0.01)
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


NOT_REPLACED = "corrupt files set aside and not replaced"
# what a set-aside file's quarantine row says once it was replaced (pipeline.quarantine)
REPLACED = {"shard": "its ledger row is dropped", "dataset": "rebuilt", "model": "rebuilt"}
CORRUPTED = {
    "shard": "a new shard, before its collect reads it (its games are played again)",
    "dataset": "a new dataset, before training reads it (exported again from its games)",
    "model": "a new candidate's weights, before evaluation reads them (written again from "
    "its run's final checkpoint)",
}


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def corrupt_new(kind: str) -> Fault:
    """A byte flipped in the next ``kind`` file stored, the moment it takes its name (before
    its ledger row is committed and the next stage sent), and this machine's cached copy gone,
    as on a worker new to it: the first task to read it must set it aside and replace it from
    its source, or the loop cannot go on."""

    def strike(c: Cluster, deadline: float) -> Strike:
        from sqlalchemy import select

        from ringrift.store.models import QuarantinedArtifact

        svc = c.service()
        if not isinstance(svc.store, ArtifactStore):
            return Strike(False, "the store is not a folder on this machine")
        folder = svc.store.root / kind

        def names() -> set[str]:
            if not folder.is_dir():
                return set()
            return {p.name for p in folder.iterdir() if not p.name.endswith(".part")}

        known = names()
        while time.monotonic() < deadline and not c.finished.is_set():
            new = sorted(names() - known)
            if new:
                break
            time.sleep(0.01)
        else:
            return Strike(False, f"no {kind} was stored")
        name = new[0]
        flip_byte(folder / name)
        (svc.cache.root / kind / name).unlink(missing_ok=True)

        def check(c: Cluster) -> dict[str, int]:
            with c.service().session() as s:
                q = select(QuarantinedArtifact.outcome).where(
                    QuarantinedArtifact.artifact_id == name
                )
                outcomes = list(s.scalars(q))
            return {NOT_REPLACED: int(not any(o.startswith(REPLACED[kind]) for o in outcomes))}

        return Strike(True, f"flipped a byte of {kind} {name} as it was stored", check)

    return strike


class PicklePayload:
    """Unpickling this creates ``path``: proof, if the file appears, that a pickle was read."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.path, "w"))


def send_pickle(broker_url: str, queue: str, marker: Path, config: str) -> str:
    """Publish by hand, as a hostile client would, a task message serialized with pickle
    whose loading would create ``marker``; its task id."""
    import pickle
    import uuid

    from kombu import Connection

    task_id = str(uuid.uuid4())
    headers: dict[str, object] = {"lang": "py", "task": "ringrift.pipeline.start", "id": task_id}
    headers.update(root_id=task_id, parent_id=None, group=None, retries=0, eta=None)
    headers.update(expires=None, origin="hand-sent")
    with Connection(broker_url) as conn:
        conn.Producer().publish(
            pickle.dumps(((config, PicklePayload(str(marker))), {}, {})),
            routing_key=queue,
            exchange="",
            headers=headers,
            content_type="application/x-python-serialize",
            content_encoding="binary",
            correlation_id=task_id,
        )
    return task_id


NOT_REFUSED = "hand-sent bad messages not refused"
# ids a hostile client might send: out of the store, absolute, with a NUL byte, 10 MB
HOSTILE_IDS = {
    "dotdot": "../../../outside",
    "absolute": "/etc/passwd",
    "nul": "model-square8_2p-g1\x00.pt",
    "ten-mb": "m" * 10_000_000,
}
REFUSED_PICKLE = "Refusing to deserialize untrusted content of type pickle"


def garbage_messages(c: Cluster, deadline: float) -> Strike:
    """A broken or hostile client sends by hand, to both queues of the running loop: a pickle
    message whose loading would create a file, and tasks whose ids climb out of the store
    (``..``), name an absolute path, hold a NUL byte or 10 MB, or name an unknown
    configuration. Each must be refused (a task that raises, named in a worker's log; the
    pickle refused unread) and nothing may appear outside the store; the loop goes on."""
    from celery import Celery

    from ringrift.chaos.runner import CONFIG

    marker = c.workdir / "pickle-ran"
    client = Celery("hand-sent", broker=c.broker_url, set_as_current=False)
    client.conf.task_serializer = "json"
    calls: list[tuple[str, tuple[object, ...]]] = [
        ("ringrift.sync.collect", ([{"artifact_id": bad}], CONFIG, 0))
        for bad in HOSTILE_IDS.values()
    ]
    # no check's verdict nor broadcast among them: the faults that kill the worker receiving one
    # would take a hand-sent copy for their moment
    calls += [
        ("ringrift.evaluate.play_match", (CONFIG, HOSTILE_IDS["dotdot"], "random", 2, "tiny")),
        ("ringrift.train.train_model", (HOSTILE_IDS["dotdot"],)),
        ("ringrift.export.build_dataset", ("square9_2p", 0, "tiny")),
    ]
    refused_before = sum(c.log_text(f"worker-{q}").count(REFUSED_PICKLE) for q in QUEUES)
    sent = []
    for i, (task, args) in enumerate(calls):
        queue = QUEUES[i % len(QUEUES)]
        sent.append(client.send_task(task, args=args, queue=queue).id)
    send_pickle(c.broker_url, QUEUES[0], marker, CONFIG)

    def check(c: Cluster) -> dict[str, int]:
        logs = "".join(c.log_text(f"worker-{q}") for q in QUEUES)
        unrefused = sum(f"[{i}] raised" not in logs for i in sent)
        pickle_refused = logs.count(REFUSED_PICKLE) > refused_before and not marker.exists()
        outside = list(c.workdir.parent.rglob("outside*"))
        return {NOT_REFUSED: unrefused + int(not pickle_refused) + len(outside)}

    return Strike(True, f"{len(sent)} tasks with hostile arguments and a pickle, by hand", check)


FAULTS: dict[str, Fault] = {
    **{f"kill-{stage}": kill_worker_in(stage) for stage in STAGE_TASKS},
    "kill-train": kill_mid_training,
    "kill-beat": kill_beat,
    "redis-restart": restart_redis_empty,
    "broker-away": broker_away,
    "postgres-restart": restart_postgres,
    "disk-full": fill_disk,
    **{f"corrupt-{kind}": corrupt_new(kind) for kind in CORRUPTED},
    "garbage-messages": garbage_messages,
}
DESCRIPTIONS = {
    **{f"kill-{stage}": f"kill -9 of the worker running {stage}" for stage in STAGE_TASKS},
    "kill-train": "kill -9 of the worker training, past a checkpoint",
    "kill-beat": "kill -9 of beat",
    "redis-restart": "Redis killed and restarted empty",
    "broker-away": f"broker unreachable {OUTAGE_SECONDS:g} s",
    "postgres-restart": f"PostgreSQL down {DATABASE_DOWN_SECONDS:g} s",
    "disk-full": f"data dir's disk full {DISK_FULL_SECONDS:g} s",
    **{f"corrupt-{kind}": f"a byte flipped in {what}" for kind, what in CORRUPTED.items()},
    "garbage-messages": "hand-sent pickle and hostile-id messages",
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

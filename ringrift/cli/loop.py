"""``ringrift loop``: the whole training loop on one machine, from one command.

Without ``RINGRIFT_BROKER_URL`` it starts a private Redis (``ringrift.infra.localredis``: a
``redis-server`` on PATH, else the embedded one); it always starts its own worker processes
(``gpu0`` ... ``gpuN-1`` for ``--workers N``, and ``cpu``) and beat as children, points the
configuration's pipeline at ``--generations`` more iterations, shows progress from the ledger,
and prints a summary.

Whatever ends it (the last generation, a time-out, a child that died, SIGINT, SIGTERM or SIGHUP)
it stops everything it started, by process id, before it exits; a stop signal ends it with status
128 + the signal's number and a summary that says so. Anything that keeps it from starting (no
broker binary, a port in use, a data dir it cannot write, an unreachable database or broker) is
found before any process starts and is reported in one line (``StartupError``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ringrift.infra.localredis import LocalRedis
from ringrift.infra.preflight import check_broker, check_database, writable_data_dir
from ringrift.infra.processes import ask_to_stop, stop_process_group
from ringrift.infra.stopsignals import StopRequested, StopSignals, held

# How long workers get for a warm shutdown (finishing their current task) before SIGKILL.
STOP_GRACE_S = 30.0

# celeryconfig.ringrift_data_dir_default, without importing celeryconfig (see run_loop).
DEFAULT_DATA_DIR = "~/.ringrift"


@dataclass
class Children:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        with open(log, "ab") as out, held():  # a stop signal waits until the pid is recorded
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "ringrift", *args],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def spawn_worker(self, queue: str, logs: Path, env: dict[str, str]) -> None:
        """One worker for ``queue``, one task at a time, logging to ``worker-<queue>.log``."""
        args = ["worker", "-Q", queue, "-c", "1", "-n", f"{queue}@%h", "--without-gossip"]
        args += ["--without-mingle", "--loglevel", "INFO"]
        self.spawn(args, logs / f"worker-{queue}.log", env)

    def spawn_beat(self, data: Path, logs: Path, env: dict[str, str]) -> None:
        """Beat, its schedule file in the data dir, logging to ``beat.log``."""
        args = ["beat", "--loglevel", "INFO", "-s", str(data / "beat-schedule")]
        self.spawn(args, logs / "beat.log", env)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def kill(self) -> None:
        """SIGKILL every child's process group at once (a second stop signal)."""
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)

    def stop(self, timeout: float = STOP_GRACE_S) -> None:
        for p in self.procs:  # all shut down together, then each is waited for in turn
            ask_to_stop(p)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            stop_process_group(p, max(0.1, deadline - time.monotonic()))


def prepare_broker(data: Path, port: int | None = None) -> LocalRedis | None:
    """Check the ledger (``data``'s, or ``RINGRIFT_DATABASE_URL``'s) and the broker that
    ``RINGRIFT_BROKER_URL`` names; without one, a private server to start (not started yet, so
    a stop signal that arrives while it starts still finds it to stop)."""
    from ringrift.store.db import database_url

    check_database(database_url(data))
    external = os.environ.get("RINGRIFT_BROKER_URL")
    if external:
        check_broker(external)
        return None
    return LocalRedis(data / "redis", port)


def start_broker(server: LocalRedis, out: IO[str]) -> str:
    """Start the private server and name it in the environment the children inherit; returns
    the broker's URL."""
    url = server.start()
    os.environ["RINGRIFT_BROKER_URL"] = f"{url}/0"
    os.environ["RINGRIFT_RESULT_BACKEND"] = f"{url}/1"
    assert server.binary is not None
    _say(f"broker: {url}/0, a private server ({server.binary.origin})", out)
    return f"{url}/0"


def _say(line: str, out: IO[str]) -> None:
    """Print a line; a terminal that went away (SIGHUP, a closed pipe) must not stop the
    cleanup, so write errors are dropped."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=out, flush=True)


def _collect_last_shards(config: str) -> None:
    """Ingest the shards that selfplay tasks finished while the workers shut down: their chained
    collect was queued after the workers stopped taking work, so the loop ends with every game
    it played in the ledger (the next loop's tick would otherwise collect them, minutes later)."""
    from ringrift.infra.service import current
    from ringrift.pipeline.state import collect_shards

    svc = current()
    with svc.session() as s:
        collect_shards(svc, s, config, older_than_s=0)


def _summary(config: str, first: int, last: int) -> dict[str, Any]:
    """What the ledger says generations ``first`` up to ``last`` made."""
    import numpy as np
    from sqlalchemy import func, select

    from ringrift.infra.service import current
    from ringrift.pipeline.state import check_name, evaluation_name
    from ringrift.store.models import (
        Artifact,
        EvaluationMatch,
        Game,
        Model,
        PipelineState,
        TrainingRun,
    )

    svc = current()
    with svc.session() as s:
        st = s.get(PipelineState, config)
        reached = min(st.generation, last) if st is not None else first
        games = (
            s.scalar(
                select(func.count())
                .select_from(Game)
                .where(Game.config == config, Game.generation >= first, Game.generation < last)
            )
            or 0
        )
        runs = list(
            s.scalars(
                select(TrainingRun).where(
                    TrainingRun.config == config,
                    TrainingRun.generation >= first,
                    TrainingRun.generation < last,
                )
            )
        )
        models = list(
            s.scalars(
                select(Model).where(
                    Model.config == config, Model.generation > first, Model.generation <= last
                )
            )
        )

        def distinct_evaluations(prefix: str) -> int:
            return int(
                s.scalar(
                    select(func.count(func.distinct(EvaluationMatch.evaluation_id))).where(
                        EvaluationMatch.candidate_id.in_([m.id for m in models]),
                        EvaluationMatch.evaluation_id.startswith(prefix),
                    )
                )
                or 0
            )

        evaluations = distinct_evaluations(evaluation_name(""))
        checks = distinct_evaluations(check_name(""))
        samples = 0
        for run in runs:
            art = s.get(Artifact, run.dataset_artifact_id)
            if art is not None:
                with np.load(svc.cache.pull(art.id, art.path, art.sha256)) as data:
                    samples += int(json.loads(str(data["meta"]))["num_samples"])
    return {
        "generations": reached - first,
        "games": int(games),
        "samples": samples,
        "models_trained": sum(1 for r in runs if r.status == "done"),
        "models_promoted": sum(1 for m in models if m.status == "promoted"),
        "evaluations": evaluations,
        "checks": checks,  # new bests played again against the best they replaced
        "rolled_back": sum(1 for m in models if m.status == "rolled_back"),
    }


def _enable_pipeline(config: str, preset_name: str, generations: int) -> int:
    """Point the configuration's pipeline at ``generations`` more iterations; returns the
    generation it starts from."""
    from ringrift.infra.service import current
    from ringrift.pipeline.state import enable_pipeline

    with current().session() as s:
        st = enable_pipeline(s, config, preset_name, generations)
        return int(st.generation)


def run_loop(
    config: str,
    generations: int,
    preset_name: str,
    *,
    data_dir: Path | None,
    as_json: bool,
    timeout: float | None,
    broker_port: int | None = None,
    workers: int = 1,
) -> int:
    from ringrift.pipeline.presets import preset
    from ringrift.pipeline.state import check_config

    check_config(config)
    preset(preset_name)
    if generations < 1:
        raise ValueError("--generations must be at least 1")
    if not 1 <= workers <= 64:
        raise ValueError(f"--workers must be between 1 and 64, got {workers}")
    external_broker = os.environ.get("RINGRIFT_BROKER_URL")
    if broker_port is not None:
        if external_broker:
            raise ValueError(
                "--broker-port is the port of the loop's own broker, but RINGRIFT_BROKER_URL "
                "names another: drop one of the two"
            )
        if not 0 < broker_port < 65536:
            raise ValueError(f"--broker-port must be between 1 and 65535, got {broker_port}")
    out = sys.stderr if as_json else sys.stdout
    started = time.monotonic()
    # celeryconfig reads the broker's URL when first imported, so nothing here may import it
    # (Settings.from_env does) before RINGRIFT_BROKER_URL names the broker below.
    data = writable_data_dir(
        Path(data_dir or os.environ.get("RINGRIFT_DATA_DIR") or DEFAULT_DATA_DIR)
    )
    os.environ["RINGRIFT_DATA_DIR"] = str(data)  # the children find exactly this folder
    logs = writable_data_dir(data / "logs")

    server: LocalRedis | None = None
    children = Children()
    first: int | None = None
    stop: StopRequested | None = None
    with StopSignals() as signals:

        def hurry() -> None:  # a second stop signal: no more waiting for anyone
            children.kill()
            if server is not None:
                server.kill()

        try:
            server = prepare_broker(data, broker_port)
            if server is not None:
                start_broker(server, out)
            first = _enable_pipeline(config, preset_name, generations)
            env = dict(os.environ)
            queues = [*(f"gpu{i}" for i in range(workers)), "cpu"]
            for queue in queues:
                children.spawn_worker(queue, logs, env)
            children.spawn_beat(data, logs, env)
            pids = ", ".join(str(p.pid) for p in children.procs)
            named = ", ".join(queues)
            _say(f"started workers for {named} and beat (pids {pids}); logs in {logs}", out)
            outcome = _watch(config, first + generations, children, started, timeout, out)
        except StopRequested as e:
            stop = e
            outcome = e.exit_status
        finally:
            signals.stopping(hurry)
            if stop is not None:
                _say(f"{stop.name}: stopping workers, beat and broker (again: kill them)", out)
            children.stop()
            if server is not None:
                server.stop()

    summary: dict[str, Any] = {"config": config, "generations": 0}
    if first is not None:
        try:
            _collect_last_shards(config)
            summary.update(_summary(config, first, first + generations))
        except Exception as e:  # noqa: BLE001 - the summary must not hide how the loop ended
            summary["summary_error"] = f"{type(e).__name__}: {e}"
    summary["generations_requested"] = generations
    summary["interrupted"] = stop.name if stop is not None else None
    summary["exit_status"] = outcome
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    if as_json:
        _say(json.dumps(summary), sys.stdout)
    else:
        head = f"summary (interrupted by {stop.name}): " if stop is not None else "summary: "
        shown = {k: v for k, v in summary.items() if k != "interrupted"}
        _say(head + ", ".join(f"{k} {v}" for k, v in shown.items()), sys.stdout)
    return outcome


def _watch(
    config: str,
    target: int,
    children: Children,
    started: float,
    timeout: float | None,
    out: IO[str],
) -> int:
    from ringrift.cli.status import config_status
    from ringrift.infra.service import current

    last = ""
    while True:
        status = config_status(current(), config)
        line = (
            f"generation {status['generation']}/{target}: {status['stage']}, "
            f"{status['games_this_generation']} games this generation; "
            f"best {status['best_model'] or 'none (uniform search)'}"
        )
        if status.get("training"):
            t = status["training"]
            line += f"; training {t['step']}/{t['total_steps']}"
        if line != last:
            last = line
            _say(f"[{time.monotonic() - started:6.0f}s] {line}", out)
        if status["generation"] >= target and status["stage"] == "done":  # last best checked
            return 0
        if not children.alive():
            _say("a worker or beat process exited; see the logs in the data dir", sys.stderr)
            return 1
        if timeout is not None and time.monotonic() - started > timeout:
            _say(f"timed out after {timeout:.0f} s", sys.stderr)
            return 1
        time.sleep(1.0)

"""``ringrift loop``: the whole training loop on one machine, from one command.

Without ``RINGRIFT_BROKER_URL`` it starts a private Redis; it always starts its own worker
processes (``gpu0`` and ``cpu`` queues) and beat as children, points the configuration's
pipeline at ``--generations`` more iterations, shows progress from the ledger, stops everything
it started (by process id) and prints a summary.
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
from typing import Any

from ringrift.localredis import LocalRedis


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a process started in its own session and everything in its group (a worker's pool
    children too): a warm shutdown first, then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # pool children may outlive the parent
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Children:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        with open(log, "ab") as out:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "ringrift", *args],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self, timeout: float = 30.0) -> None:
        for p in self.procs:  # all shut down together, then each is waited for in turn
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            stop_process_group(p, max(0.1, deadline - time.monotonic()))


def _summary(config: str, first: int, last: int, started: float) -> dict[str, Any]:
    import numpy as np
    from sqlalchemy import func, select

    from ringrift.service import current
    from ringrift.store.models import Artifact, EvaluationMatch, Game, Model, TrainingRun

    svc = current()
    with svc.session() as s:
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
        evaluations = s.scalar(
            select(func.count(func.distinct(EvaluationMatch.evaluation_id))).where(
                EvaluationMatch.candidate_id.in_([m.id for m in models])
            )
        )
        samples = 0
        for run in runs:
            art = s.get(Artifact, run.dataset_artifact_id)
            if art is not None:
                with np.load(svc.store.path_of(art.path)) as data:
                    samples += int(json.loads(str(data["meta"]))["num_samples"])
    return {
        "config": config,
        "generations": last - first,
        "games": int(games),
        "samples": samples,
        "models_trained": sum(1 for r in runs if r.status == "done"),
        "models_promoted": sum(1 for m in models if m.status == "promoted"),
        "evaluations": int(evaluations or 0),
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def run_loop(
    config: str,
    generations: int,
    preset_name: str,
    *,
    data_dir: Path | None,
    as_json: bool,
    timeout: float | None,
) -> int:
    from ringrift.pipeline import check_config
    from ringrift.presets import preset

    check_config(config)
    preset(preset_name)
    if generations < 1:
        raise ValueError("--generations must be at least 1")
    started = time.monotonic()
    if data_dir is not None:
        os.environ["RINGRIFT_DATA_DIR"] = str(data_dir)
    data = Path(os.environ.get("RINGRIFT_DATA_DIR", "~/.ringrift")).expanduser().absolute()
    data.mkdir(parents=True, exist_ok=True)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    server = None
    if not os.environ.get("RINGRIFT_BROKER_URL"):
        server = LocalRedis(data / "redis")
        url = server.start()
        os.environ["RINGRIFT_BROKER_URL"] = f"{url}/0"
        os.environ["RINGRIFT_RESULT_BACKEND"] = f"{url}/1"
    children = Children()
    try:
        from ringrift.service import current
        from ringrift.store import migrate
        from ringrift.store.models import PipelineState

        svc = current()
        migrate(svc.settings.database_url)
        with svc.session() as s:
            st = s.get(PipelineState, config)
            if st is None:
                st = PipelineState(config=config, generation=0, stage="selfplay")
                s.add(st)
            st.enabled = True
            st.preset = preset_name
            first = st.generation
            st.target_generations = first + generations
        env = dict(os.environ)
        children.spawn(
            [
                "worker",
                "-Q",
                "gpu0",
                "-c",
                "1",
                "-n",
                "gpu0@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            logs / "worker-gpu0.log",
            env,
        )
        children.spawn(
            [
                "worker",
                "-Q",
                "cpu",
                "-c",
                "1",
                "-n",
                "cpu@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            logs / "worker-cpu.log",
            env,
        )
        children.spawn(
            ["beat", "--loglevel", "INFO", "-s", str(data / "beat-schedule")],
            logs / "beat.log",
            env,
        )
        outcome = _watch(config, first + generations, children, started, timeout, as_json)
        summary = _summary(config, first, first + generations, started)
    finally:
        children.stop()
        if server is not None:
            server.stop()
    if as_json:
        print(json.dumps(summary))
    else:
        print("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    return outcome


def _watch(
    config: str, target: int, children: Children, started: float, timeout: float | None, quiet: bool
) -> int:
    from ringrift.service import current
    from ringrift.status import config_status

    last = ""
    while True:
        status = config_status(current(), config)
        line = (
            f"[{time.monotonic() - started:6.0f}s] generation {status['generation']}/"
            f"{target}: {status['stage']}, {status['games_this_generation']} games this "
            f"generation; best {status['best_model'] or 'none (uniform search)'}"
        )
        if status.get("training"):
            t = status["training"]
            line += f"; training {t['step']}/{t['total_steps']}"
        if line.split("] ", 1)[1] != last:
            last = line.split("] ", 1)[1]
            print(line, file=sys.stderr if quiet else sys.stdout, flush=True)
        if status["generation"] >= target:
            return 0
        if not children.alive():
            print("a worker or beat process exited; see the logs in the data dir", file=sys.stderr)
            return 1
        if timeout is not None and time.monotonic() - started > timeout:
            print(f"timed out after {timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(1.0)

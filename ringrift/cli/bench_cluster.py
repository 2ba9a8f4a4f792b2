"""``ringrift bench cluster``: the scheduler under load on this one machine.

It starts what ``ringrift loop`` starts, with that command's pieces (the same checks first, a
private Redis unless ``RINGRIFT_BROKER_URL`` is set, children in sessions of their own stopped by
process id, the same stop signals), but with ``N`` workers: ``N-1`` "GPU" workers (queues
``gpu0`` ... ``gpuN-2``, one task at a time each) and one ``cpu`` worker, where the beat's tick
runs. In a fresh data dir and SQLite ledger it enables every requested configuration on the
preset with no end, lets the service run for ``M`` minutes, stops everything and measures:

- tasks per hour per task name, from the workers' ``Task <name>[<id>] succeeded in <x>s`` and
  ``raised`` lines;
- the GPU workers' idle share: the part of each worker's time, from its ``ready`` line to the end
  of the measurement, in which it ran no task (busy intervals ``[end - duration, end]`` from its
  log), over all GPU workers; meaningful as a scheduler figure while work was due, which the
  ledger is sampled for (at least one configuration not under backpressure);
- the tick's duration (median, p90), from the cpu worker's log;
- duplicates: stages started twice (``started <stage>`` lines per configuration, generation and
  stage, plus the tick's restarted-stage repairs counted in Redis) and games stored twice (game
  ids in more than one stored shard, plus stored shards' games missing from the ledger);
- the configurations that advanced (generation 1 or more), and each one's generation, games and
  best model.

At the end of the ``M`` minutes the ledger is read, every configuration is disabled (no new
work), beat is stopped, and the selfplay already sent finishes and is collected (at most
``DRAIN_S``) before the workers get their warm shutdown, so that a shard stored in the last
seconds is not taken for a lost one. The log parsing lives in pure functions (text in, numbers
out) at the top of this module.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from ringrift.cli.loop import Children, _say, prepare_broker, start_broker
from ringrift.errors import StartupError
from ringrift.infra.localredis import LocalRedis
from ringrift.infra.preflight import writable_data_dir
from ringrift.infra.stopsignals import StopRequested, StopSignals

PROGRESS_S = 30.0  # a progress line this often
SAMPLE_S = 5.0  # the ledger is sampled for backpressure this often
READY_TIMEOUT_S = 180.0  # the clock starts when every worker is ready, or after this long
DRAIN_S = 45.0  # at most this long for the selfplay already sent to finish and be collected
TICK_TASK = "ringrift.pipeline.tick"
SELFPLAY_TASKS = ("ringrift.selfplay.play_games", "ringrift.sync.collect")

# ----- the worker logs: pure functions, text in, numbers out --------------------------------------

_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): (\w+)/([^\]]+)\] (.*)$")
_TASK = re.compile(
    r"^Task ([\w.]+)\[([^\]]+)\] "
    r"(received$|succeeded in ([0-9.]+(?:[eE][-+]?\d+)?)s|raised\b|INTERNAL ERROR\b|retry:)"
)
_DISCARDED = re.compile(r"^Discarding revoked task: ([\w.]+)\[([^\]\s]+)\]")
_READY = re.compile(r"^\S+@\S+ ready\.$")
_BEAT_SENT = re.compile(r"^Scheduler: Sending due task (\S+) ")
_STARTED = re.compile(r"(?:^|\s)([a-z0-9]+_[234]p) g(\d+): started (\w+)\b")
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f"


@dataclass(frozen=True)
class LogLine:
    at: datetime
    level: str
    process: str
    message: str


@dataclass(frozen=True)
class TaskEvent:
    """One line about a task: ``kind`` is received, succeeded, raised, retry or discarded;
    ``runtime`` (seconds) only on succeeded."""

    at: datetime
    name: str
    task_id: str
    kind: str
    runtime: float | None = None


def log_lines(text: str) -> list[LogLine]:
    """The timestamped lines of a Celery log (``[YYYY-MM-DD HH:MM:SS,mmm: LEVEL/Process] ...``);
    banners, tracebacks and other continuation lines are left out."""
    out = []
    for raw in text.splitlines():
        m = _LINE.match(raw.rstrip())
        if m is not None:
            at = datetime.strptime(m.group(1), _TIME_FORMAT)
            out.append(LogLine(at, m.group(2), m.group(3), m.group(4)))
    return out


def task_events(text: str) -> list[TaskEvent]:
    """Every task line of a worker's log, in log order."""
    out = []
    for line in log_lines(text):
        m = _TASK.match(line.message)
        if m is not None:
            word = m.group(3)
            if word == "received":
                out.append(TaskEvent(line.at, m.group(1), m.group(2), "received"))
            elif m.group(4) is not None:
                out.append(
                    TaskEvent(line.at, m.group(1), m.group(2), "succeeded", float(m.group(4)))
                )
            else:
                kind = "retry" if word == "retry:" else "raised"
                out.append(TaskEvent(line.at, m.group(1), m.group(2), kind))
            continue
        d = _DISCARDED.match(line.message)
        if d is not None:
            out.append(TaskEvent(line.at, d.group(1), d.group(2), "discarded"))
    return out


def ready_at(text: str) -> datetime | None:
    """When the worker logged ``<name>@<host> ready.``, if it did."""
    for line in log_lines(text):
        if _READY.match(line.message):
            return line.at
    return None


def pending_tasks(text: str, names: Iterable[str] | None = None) -> list[str]:
    """Ids of tasks the worker received and has not finished (nor discarded), optionally only
    those named in ``names``."""
    wanted = None if names is None else set(names)
    received: dict[str, str] = {}
    ended: set[str] = set()
    for e in task_events(text):
        if e.kind == "received":
            received.setdefault(e.task_id, e.name)
        else:
            ended.add(e.task_id)
    return [
        tid
        for tid, name in received.items()
        if tid not in ended and (wanted is None or name in wanted)
    ]


def busy_intervals(text: str, end: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """When the worker ran a task: ``[end - duration, end]`` of each task that succeeded; a
    task that raised logs no duration, so it counts from its receipt (or the previous task's
    end, if later); given ``end``, a task received and never finished runs until ``end``."""
    received: dict[str, datetime] = {}
    finished: set[str] = set()
    intervals: list[tuple[datetime, datetime]] = []
    last_end: datetime | None = None
    for e in task_events(text):
        if e.kind == "received":
            received.setdefault(e.task_id, e.at)
            continue
        finished.add(e.task_id)
        if e.kind == "discarded":
            continue
        if e.kind == "succeeded" and e.runtime is not None:
            start = e.at - timedelta(seconds=e.runtime)
        else:
            start = received.get(e.task_id, e.at)
            if last_end is not None and last_end > start:
                start = last_end
        intervals.append((min(start, e.at), e.at))
        last_end = e.at if last_end is None else max(last_end, e.at)
    if end is not None:
        for tid, at in received.items():
            if tid not in finished:
                start = at if last_end is None else max(at, last_end)
                if start < end:
                    intervals.append((start, end))
    return sorted(intervals)


def busy_seconds(
    intervals: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime
) -> float:
    """The time within ``[start, end]`` covered by at least one interval (overlaps once)."""
    total = 0.0
    cur: tuple[datetime, datetime] | None = None
    for a, b in sorted(intervals):
        a, b = max(a, start), min(b, end)
        if b <= a:
            continue
        if cur is not None and a <= cur[1]:
            cur = (cur[0], max(cur[1], b))
            continue
        if cur is not None:
            total += (cur[1] - cur[0]).total_seconds()
        cur = (a, b)
    if cur is not None:
        total += (cur[1] - cur[0]).total_seconds()
    return total


def idle_time(text: str, end: datetime | None = None) -> tuple[float, float] | None:
    """(idle seconds, window seconds) of one worker, from its ``ready`` line to ``end`` (default:
    its last timestamped line); None if it never logged ``ready``."""
    ready = ready_at(text)
    if ready is None:
        return None
    if end is None:
        lines = log_lines(text)
        end = lines[-1].at if lines else ready
    window = max(0.0, (end - ready).total_seconds())
    busy = busy_seconds(busy_intervals(text, end), ready, end)
    return max(0.0, window - busy), window


def idle_share(texts: Iterable[str], end: datetime | None = None) -> float | None:
    """Over several workers' logs: idle time over wall time, each worker from its ``ready`` to
    ``end``; None if no worker has a window."""
    idle = window = 0.0
    for text in texts:
        got = idle_time(text, end)
        if got is not None:
            idle += got[0]
            window += got[1]
    return idle / window if window > 0 else None


def task_durations(
    text: str, name: str, start: datetime | None = None, end: datetime | None = None
) -> list[float]:
    """The durations of the ``name`` tasks that succeeded (within ``[start, end]``), in log
    order."""
    return [
        e.runtime
        for e in task_events(text)
        if e.name == name
        and e.kind == "succeeded"
        and e.runtime is not None
        and (start is None or e.at >= start)
        and (end is None or e.at <= end)
    ]


def tick_gaps(text: str, start: datetime | None = None, end: datetime | None = None) -> list[float]:
    """The stretches of ``[start, end]`` with no tick starting (a tick starts at its end minus
    its duration): from ``start`` to the first tick, between successive ticks, from the last to
    ``end``; how long the service went without its reconciler. Without bounds, only the
    stretches between ticks."""
    starts = sorted(
        t
        for t in (
            e.at - timedelta(seconds=e.runtime)
            for e in task_events(text)
            if e.name == TICK_TASK and e.kind == "succeeded" and e.runtime is not None
        )
        if (start is None or t >= start) and (end is None or t <= end)
    )
    points = [*([start] if start is not None else []), *starts, *([end] if end is not None else [])]
    return [(b - a).total_seconds() for a, b in zip(points, points[1:], strict=False)]


def discarded(
    text: str, name: str, start: datetime | None = None, end: datetime | None = None
) -> int:
    """How many ``name`` tasks the worker discarded unrun (``Discarding revoked task``: expired
    in the queue, or revoked) within ``[start, end]``."""
    return sum(
        1
        for e in task_events(text)
        if e.name == name
        and e.kind == "discarded"
        and (start is None or e.at >= start)
        and (end is None or e.at <= end)
    )


def beat_sent(
    text: str,
    entry: str = "pipeline-tick",
    start: datetime | None = None,
    end: datetime | None = None,
) -> int:
    """How often beat sent ``entry`` (its ``Scheduler: Sending due task`` lines) within
    ``[start, end]``."""
    n = 0
    for line in log_lines(text):
        m = _BEAT_SENT.match(line.message)
        within = (start is None or line.at >= start) and (end is None or line.at <= end)
        n += m is not None and m.group(1) == entry and within
    return n


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(1, math.ceil(q * len(ordered) / 100))
    return ordered[min(k, len(ordered)) - 1]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def task_counts(
    texts: Iterable[str], start: datetime | None = None, end: datetime | None = None
) -> dict[str, dict[str, int]]:
    """Per task name, how many ``succeeded`` and ``raised`` (logged within ``[start, end]``)."""
    counts: dict[str, dict[str, int]] = {}
    for text in texts:
        for e in task_events(text):
            if e.kind not in ("succeeded", "raised"):
                continue
            if (start is not None and e.at < start) or (end is not None and e.at > end):
                continue
            c = counts.setdefault(e.name, {"succeeded": 0, "raised": 0})
            c[e.kind] += 1
    return dict(sorted(counts.items()))


def tasks_per_hour(counts: dict[str, dict[str, int]], seconds: float) -> dict[str, float]:
    """Finished tasks (succeeded or raised) per hour over ``seconds`` of measurement."""
    if seconds <= 0:
        return {}
    return {name: round(sum(c.values()) * 3600 / seconds, 1) for name, c in counts.items()}


def stage_starts(text: str) -> Counter[tuple[str, int, str]]:
    """How often each (config, generation, stage) was started (``<config> g<k>: started
    <stage> <detail>`` lines); ``resend`` (an evaluation match sent again) is not a stage start.
    An evaluation may be sent in parts (as many matches as there is room for), so it counts
    per match: ``evaluate random``, ``evaluate heuristic``, ..."""
    starts: Counter[tuple[str, int, str]] = Counter()
    for line in log_lines(text):
        m = _STARTED.search(line.message)
        if m is None or m.group(3) == "resend":
            continue
        key = (m.group(1), int(m.group(2)))
        if m.group(3) == "evaluate":
            detail = ast.literal_eval(line.message[m.end() :].strip() or "{}")
            for opponent in detail.get("opponents", []):
                starts[(*key, f"evaluate {opponent}")] += 1
        else:
            starts[(*key, m.group(3))] += 1
    return starts


def duplicate_starts(texts: Iterable[str]) -> dict[str, int]:
    """The stages started more than once over all the logs: ``"<config> g<k> <stage>"`` -> how
    many times."""
    total: Counter[tuple[str, int, str]] = Counter()
    for text in texts:
        total.update(stage_starts(text))
    return {f"{c} g{g} {s}": n for (c, g, s), n in sorted(total.items()) if n > 1}


def problem_lines(
    text: str,
    levels: Iterable[str] = ("ERROR", "CRITICAL"),
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[str]:
    """The timestamped lines logged at one of ``levels`` (within ``[start, end]``), as they
    are."""
    wanted = set(levels)
    out = []
    for raw in text.splitlines():
        m = _LINE.match(raw.rstrip())
        if m is None or m.group(2) not in wanted:
            continue
        at = datetime.strptime(m.group(1), _TIME_FORMAT)
        if (start is None or at >= start) and (end is None or at <= end):
            out.append(raw.rstrip())
    return out


# ----- running it ---------------------------------------------------------------------------------


def parse_configs(spec: str) -> list[str]:
    """``all`` or a comma-separated list of configuration names, each checked, once each."""
    from ringrift.game import ALL_CONFIGS
    from ringrift.pipeline.state import check_config

    if spec.strip().lower() == "all":
        return list(ALL_CONFIGS)
    names: list[str] = []
    for part in spec.split(","):
        name = part.strip()
        if name:
            check_config(name)
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError("--configs names no configuration: give all, or C1,C2,...")
    return names


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _fresh_data_dir(data_dir: Path | None) -> Path:
    if data_dir is None:
        return writable_data_dir(Path(tempfile.mkdtemp(prefix="ringrift-bench-")))
    path = writable_data_dir(data_dir)
    if any(path.iterdir()):
        raise StartupError(
            f"data dir {path} is not empty: the benchmark needs a fresh ledger; name a new or "
            "empty folder with --data-dir, or leave it out for a temporary one"
        )
    return path


@dataclass
class Samples:
    """The ledger, sampled while the service runs."""

    taken: int = 0
    work_due: int = 0  # samples in which some configuration was not under backpressure
    blocked: Counter[str] = field(default_factory=Counter)  # per config: samples under it
    errors: int = 0


def _ledger_snapshot(r: Any, configs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each configuration as the ledger (and Redis, for selfplay in flight) has it now."""
    from sqlalchemy import func, select

    from ringrift.infra.service import current
    from ringrift.pipeline.presets import preset
    from ringrift.pipeline.scheduler import INFLIGHT
    from ringrift.pipeline.state import game_count
    from ringrift.store.models import Game, PipelineState

    out: dict[str, dict[str, Any]] = {}
    with current().session() as s:
        games = {
            str(c): int(n)
            for c, n in s.execute(select(Game.config, func.count()).group_by(Game.config))
        }
        for config in configs:
            st = s.get(PipelineState, config)
            if st is None:
                continue
            p = preset(st.preset, config)
            new = game_count(s, config) - st.last_export_game_count
            flying = int(r.zcount(INFLIGHT + config, time.time() - p.claim_seconds, "+inf"))
            room = math.ceil((p.max_unexported_games - new) / p.games_per_task) - flying
            out[config] = {
                "generation": int(st.generation),
                "stage": st.stage,
                "games": games.get(config, 0),
                "best_model": st.best_model_id,
                "unexported_games": new,
                "selfplay_in_flight": flying,
                "backpressure": room <= 0,
            }
    return out


def _enable(configs: Sequence[str], preset_name: str) -> None:
    """Every configuration on the preset with no end, as ``ringrift pipeline start`` does."""
    from ringrift.infra.service import current
    from ringrift.pipeline.state import enable_pipeline
    from ringrift.store import ensure_schema

    svc = current()
    ensure_schema(svc.settings.database_url)
    with svc.session() as s:
        for config in configs:
            enable_pipeline(s, config, preset_name, None)


def _disable(configs: Sequence[str]) -> None:
    """No new work for any configuration (``ringrift pipeline stop``); running tasks finish."""
    from ringrift.infra.service import current
    from ringrift.pipeline.state import disable_pipeline

    with current().session() as s:
        for config in configs:
            disable_pipeline(s, config)


def _queued(r: Any, queues: Iterable[str], names: Iterable[str]) -> int:
    """Messages for tasks named ``names`` waiting in ``queues``."""
    from ringrift.celery import app
    from ringrift.infra.queues import queue_keys

    wanted = set(names)
    n = 0
    for key in (k for q in queues for k in queue_keys(app, q)):  # every priority's list
        for raw in r.lrange(key, 0, -1):
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                if json.loads(raw).get("headers", {}).get("task") in wanted:
                    n += 1
    return n


def _drain(r: Any, queues: Sequence[str], logs: Sequence[Path], workers: Children) -> bool:
    """Wait (at most ``DRAIN_S``) until no selfplay or collect is queued or running, two checks
    in a row; whether that happened."""
    deadline = time.monotonic() + DRAIN_S
    quiet = 0
    while time.monotonic() < deadline and workers.alive():
        busy = _queued(r, queues, SELFPLAY_TASKS) + sum(
            len(pending_tasks(_read(p), SELFPLAY_TASKS)) for p in logs
        )
        quiet = quiet + 1 if busy == 0 else 0
        if quiet >= 2:
            return True
        time.sleep(1.0)
    return False


def _progress(elapsed: float, total: float, snap: dict[str, dict[str, Any]]) -> str:
    games = sum(c["games"] for c in snap.values())
    gens = " ".join(f"{c}:{v['generation']}" for c, v in snap.items())
    return f"[{elapsed:5.0f}s/{total:.0f}s] {games} games; generations {gens}"


def _measure(
    r: Any,
    configs: Sequence[str],
    seconds: float,
    children: Sequence[Children],
    samples: Samples,
    out: IO[str],
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run for ``seconds``, sampling the ledger and printing progress; (exit status, the last
    snapshot). Status 1 if a child died."""
    started = time.monotonic()
    next_sample = started
    next_progress = started + PROGRESS_S
    snap: dict[str, dict[str, Any]] = {}
    while True:
        now = time.monotonic()
        if now >= next_sample:
            next_sample += SAMPLE_S
            try:
                snap = _ledger_snapshot(r, configs)
            except Exception:  # noqa: BLE001 - a busy ledger costs a sample, not the run
                samples.errors += 1
            else:
                samples.taken += 1
                open_ = [c for c, v in snap.items() if not v["backpressure"]]
                samples.work_due += bool(open_)
                samples.blocked.update(c for c, v in snap.items() if v["backpressure"])
        if now >= next_progress:
            next_progress += PROGRESS_S
            _say(_progress(now - started, seconds, snap), out)
        if now - started >= seconds:
            return 0, snap
        if not all(c.alive() for c in children):
            _say("a worker or beat process exited; see the logs in the data dir", sys.stderr)
            return 1, snap
        time.sleep(max(0.05, min(1.0, started + seconds - time.monotonic())))


def _wait_ready(logs: dict[str, Path], children: Sequence[Children], out: IO[str]) -> int:
    """Wait until every worker logged ``ready``; 1 if a child died meanwhile."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        missing = [q for q, p in logs.items() if ready_at(_read(p)) is None]
        if not missing:
            return 0
        if not all(c.alive() for c in children):
            _say("a worker or beat process exited while starting; see its log", sys.stderr)
            return 1
        if time.monotonic() > deadline:
            _say(f"not ready after {READY_TIMEOUT_S:.0f} s: {', '.join(missing)}; measuring", out)
            return 0
        time.sleep(0.5)


def _stored_games(end: float | None) -> dict[str, Any]:
    """Games stored twice: ids in more than one stored shard, and stored shards' games the
    ledger lacks. A shard none of whose games is in the ledger and that was stored less than
    ``ORPHAN_SHARD_SECONDS`` before ``end`` (epoch seconds), or after it, was still on its way
    (its collect had not run when the workers stopped): reported apart, not counted."""
    from datetime import UTC

    from sqlalchemy import select

    from ringrift.ai.selfplay import read_shard
    from ringrift.infra.service import current
    from ringrift.pipeline.state import ORPHAN_SHARD_SECONDS
    from ringrift.store.models import Artifact, Game

    svc = current()
    shards_of: dict[str, list[str]] = {}
    games_of: dict[str, list[str]] = {}
    unreadable: list[str] = []
    names = [n for n in svc.store.names_at("shard") if n.startswith("shard-")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shard.jsonl.gz"
        for name in names:
            with open(path, "wb") as f:
                for chunk in svc.store.chunks(f"shard/{name}"):
                    f.write(chunk)
            try:
                _, games = read_shard(path)
            except ValueError as e:
                unreadable.append(f"{name}: {e}")
                continue
            games_of[name] = [str(g["id"]) for g in games]
            for gid in games_of[name]:
                shards_of.setdefault(gid, []).append(name)
    with svc.session() as s:
        in_ledger = set(s.scalars(select(Game.id)))
        stored_at = {
            a.id: (a.created_at if a.created_at.tzinfo else a.created_at.replace(tzinfo=UTC))
            for a in s.scalars(select(Artifact).where(Artifact.kind == "shard"))
        }
    twice = sorted(g for g, where in shards_of.items() if len(where) > 1)
    missing: list[str] = []
    on_the_way: list[str] = []
    for name, ids in games_of.items():
        lacking = [g for g in ids if g not in in_ledger]
        at = stored_at.get(name)
        recent = end is not None and at is not None and end - at.timestamp() < ORPHAN_SHARD_SECONDS
        if lacking and len(lacking) == len(ids) and recent:
            on_the_way.append(name)
        else:
            missing += lacking
    return {
        "shards": len(names),
        "games_in_shards": len(shards_of),
        "games_in_ledger": len(in_ledger),
        "games_in_several_shards": len(twice),
        "shard_games_missing_from_ledger": len(missing),
        "missing_examples": sorted(missing)[:10],
        "shards_uncollected_at_stop": sorted(on_the_way),
        "games_uncollected_at_stop": sum(len(games_of[n]) for n in on_the_way),
        "unreadable_shards": unreadable[:10],
    }


def _read_repairs(url: str) -> dict[str, int] | str:
    import redis

    from ringrift.pipeline.repairs import repairs

    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            return repairs(client)
        finally:
            client.close()
    except redis.RedisError as e:
        return f"unread: {e}"


def run_bench(
    configs_spec: str,
    workers: int,
    minutes: float,
    preset_name: str,
    tick_seconds: float,
    *,
    data_dir: Path | None,
    as_json: bool,
) -> int:
    """Run and measure; returns the exit status (0 measured, 1 a child died, 128+N on signal
    N); a command that cannot start raises ``StartupError`` or ``ValueError``."""
    from ringrift.pipeline.presets import preset

    configs = parse_configs(configs_spec)
    preset(preset_name)
    if workers < 2:
        raise ValueError("--workers must be at least 2: one or more GPU workers and the cpu one")
    if not minutes > 0:
        raise ValueError(f"--minutes must be above 0, got {minutes}")
    if not tick_seconds > 0:
        raise ValueError(f"--tick-seconds must be above 0, got {tick_seconds}")
    out = sys.stdout
    external_broker = os.environ.get("RINGRIFT_BROKER_URL")
    # A fresh data dir holds everything: its own SQLite ledger and folder artifact store.
    # celeryconfig reads the broker's URL when first imported: nothing may import it before
    # RINGRIFT_BROKER_URL names the broker (see ringrift.cli.loop).
    data = _fresh_data_dir(data_dir)
    os.environ["RINGRIFT_DATA_DIR"] = str(data)
    os.environ.pop("RINGRIFT_DATABASE_URL", None)
    os.environ.pop("RINGRIFT_ARTIFACT_URL", None)
    logs = writable_data_dir(data / "logs")
    gpu_queues = [f"gpu{i}" for i in range(workers - 1)]
    queues = [*gpu_queues, "cpu"]
    worker_logs = {q: logs / f"worker-{q}.log" for q in queues}

    server: LocalRedis | None = None
    pool, beat = Children(), Children()
    child_pids: list[int] = []
    broker = external_broker or ""
    r: Any = None
    outcome = 0
    stop: StopRequested | None = None
    samples = Samples()
    snap: dict[str, dict[str, Any]] = {}
    clock: tuple[float, datetime] | None = None  # when measuring began: monotonic, log clock
    end: tuple[float, datetime] | None = None
    drained: bool | None = None
    repairs_seen: dict[str, int] | str = {}
    enabled = False
    with StopSignals() as signals:

        def hurry() -> None:  # a second stop signal: no more waiting for anyone
            pool.kill()
            beat.kill()
            if server is not None:
                server.kill()

        try:
            server = prepare_broker(data)
            if server is not None:
                broker = start_broker(server, out)
                assert server.proc is not None
                child_pids.append(server.proc.pid)
            import redis

            r = redis.Redis.from_url(broker, socket_timeout=10)
            _enable(configs, preset_name)
            enabled = True
            env = dict(os.environ)
            env["RINGRIFT_TORCH_THREADS"] = "1"
            env["RINGRIFT_TICK_SECONDS"] = f"{tick_seconds:g}"
            for q in queues:
                pool.spawn_worker(q, logs, env)
                child_pids.append(pool.procs[-1].pid)
            beat.spawn_beat(data, logs, env)
            child_pids.append(beat.procs[-1].pid)
            _say(
                f"started {len(gpu_queues)} GPU workers ({', '.join(gpu_queues)}), a cpu "
                f"worker and beat (tick {tick_seconds:g} s); {len(configs)} configurations on "
                f"preset {preset_name}; logs in {logs}",
                out,
            )
            outcome = _wait_ready(worker_logs, (pool, beat), out)
            if outcome == 0:
                clock = (time.monotonic(), datetime.now())
                _say(f"all workers ready; measuring for {minutes:g} min", out)
                outcome, snap = _measure(r, configs, minutes * 60, (pool, beat), samples, out)
            end = (time.monotonic(), datetime.now())
            with contextlib.suppress(Exception):
                snap = _ledger_snapshot(r, configs)
            if outcome == 0:
                _say("measured; no new work, letting the selfplay sent finish", out)
                _disable(configs)
                enabled = False
                beat.stop()
                drained = _drain(r, queues, list(worker_logs.values()), pool)
        except StopRequested as e:
            stop = e
            outcome = e.exit_status
        finally:
            signals.stopping(hurry)
            if end is None:
                end = (time.monotonic(), datetime.now())
            if stop is not None:
                _say(f"{stop.name}: stopping workers, beat and broker (again: kill them)", out)
            beat.stop()
            pool.stop()
            if r is not None:
                repairs_seen = _read_repairs(broker)
                with contextlib.suppress(Exception):
                    r.close()
            if server is not None:
                server.stop()
    if enabled:  # stopped early: the ledger must not keep the configurations enabled
        with contextlib.suppress(Exception):
            _disable(configs)

    report = _report(
        configs,
        preset_name,
        workers,
        minutes,
        tick_seconds,
        worker_logs,
        logs / "beat.log",
        gpu_queues,
        clock,
        end,
        snap,
        samples,
        repairs_seen,
    )
    report.update(
        drained=drained,
        child_pids=child_pids,
        broker=broker,
        data_dir=str(data),
        interrupted=stop.name if stop is not None else None,
        exit_status=outcome,
    )
    for line in _summary_lines(report):
        _say(line, out)
    if as_json:
        _say(json.dumps(report), out)
    return outcome


def _report(
    configs: Sequence[str],
    preset_name: str,
    workers: int,
    minutes: float,
    tick_seconds: float,
    worker_logs: dict[str, Path],
    beat_log: Path,
    gpu_queues: Sequence[str],
    clock: tuple[float, datetime] | None,
    end: tuple[float, datetime] | None,
    snap: dict[str, dict[str, Any]],
    samples: Samples,
    repairs_seen: dict[str, int] | str,
) -> dict[str, Any]:
    from ringrift.pipeline.repairs import STAGE_RESTARTED

    texts = {q: _read(p) for q, p in worker_logs.items()}
    end_at = end[1] if end is not None else None
    start_at = clock[1] if clock is not None else None
    seconds = end[0] - clock[0] if clock is not None and end is not None else 0.0
    counts = task_counts(texts.values(), start_at, end_at)
    idle = {q: idle_time(texts[q], end_at) for q in gpu_queues}
    ticks = task_durations(texts.get("cpu", ""), TICK_TASK, start_at, end_at)
    gaps = tick_gaps(texts.get("cpu", ""), start_at, end_at)
    twice = duplicate_starts(texts.values())
    restarted = repairs_seen.get(STAGE_RESTARTED, 0) if isinstance(repairs_seen, dict) else 0
    try:
        stored: dict[str, Any] = _stored_games(end_at.timestamp() if end_at else None)
    except Exception as e:  # noqa: BLE001 - the rest of the report stands without it
        stored = {"error": f"{type(e).__name__}: {e}"}
    stage_dups = len(twice) + restarted
    game_dups = int(stored.get("games_in_several_shards", 0)) + int(
        stored.get("shard_games_missing_from_ledger", 0)
    )
    errors = {q: problem_lines(t, end=end_at) for q, t in texts.items()}
    warnings = {q: problem_lines(t, ("WARNING",), end=end_at) for q, t in texts.items()}
    at_stop = {q: problem_lines(t, start=end_at) for q, t in texts.items()} if end_at else {}
    advanced = sorted(c for c, v in snap.items() if v["generation"] >= 1)
    for c, v in snap.items():
        v["blocked_share"] = round(samples.blocked[c] / samples.taken, 3) if samples.taken else None
    share = idle_share((texts[q] for q in gpu_queues), end_at)
    tick_median = median(ticks)
    tick_p90 = percentile(ticks, 90)
    return {
        "configs_requested": list(configs),
        "preset": preset_name,
        "workers": workers,
        "gpu_workers": len(gpu_queues),
        "minutes": minutes,
        "measured_s": round(seconds, 1),
        "tick_seconds": tick_seconds,
        "idle_share": None if share is None else round(share, 4),
        "idle_share_per_worker": {
            q: None if v is None or v[1] <= 0 else round(v[0] / v[1], 4) for q, v in idle.items()
        },
        "idle_share_assumes": "work was due throughout: at least one configuration not under "
        "backpressure (work_due_share: the ledger samples in which that held)",
        "work_due_share": round(samples.work_due / samples.taken, 3) if samples.taken else None,
        "ledger_samples": samples.taken,
        "ledger_sample_errors": samples.errors,
        "tick_median_s": None if tick_median is None else round(tick_median, 4),
        "tick_p90_s": None if tick_p90 is None else round(tick_p90, 4),
        "ticks": len(ticks),
        "ticks_sent": beat_sent(_read(beat_log), "pipeline-tick", start_at, end_at),
        # a tick sent in the window may expire unrun after it, when the worker frees up
        "ticks_expired": discarded(texts.get("cpu", ""), TICK_TASK, start_at),
        "tick_gap_max_s": round(max(gaps), 3) if gaps else None,
        "tasks_per_hour": tasks_per_hour(counts, seconds),
        "task_counts": counts,
        "duplicates": stage_dups + game_dups,
        "duplicate_detail": {
            "stages_started_twice": twice,
            "stage_restart_repairs": restarted,
            **stored,
        },
        "repairs": repairs_seen,
        "configs_advanced": advanced,
        "configs": snap,
        "log_errors": sum(len(v) for v in errors.values()),
        "log_warnings": sum(len(v) for v in warnings.values()),
        "log_excerpts": [f"{q}: {line}" for q, v in errors.items() for line in v][:10]
        + [f"{q}: {line}" for q, v in warnings.items() for line in v][:10],
        "log_errors_at_stop": [f"{q}: {line}" for q, v in at_stop.items() for line in v][:10],
    }


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _summary_lines(rep: dict[str, Any]) -> list[str]:
    head = f"summary (interrupted by {rep['interrupted']})" if rep["interrupted"] else "summary"
    d = rep["duplicate_detail"]
    lines = [
        f"{head}: {len(rep['configs_requested'])} configurations on preset {rep['preset']}, "
        f"{rep['gpu_workers']} GPU workers and a cpu worker, tick {rep['tick_seconds']:g} s, "
        f"{rep['measured_s']:.0f} s measured",
        f"  idle share of the GPU workers: {_fmt(rep['idle_share'], '.1%')} (per worker: "
        + ", ".join(f"{q} {_fmt(v, '.1%')}" for q, v in rep["idle_share_per_worker"].items())
        + f"); work was due in {_fmt(rep['work_due_share'], '.0%')} of "
        f"{rep['ledger_samples']} ledger samples",
        f"  tick: median {_fmt(rep['tick_median_s'], '.3f', ' s')}, p90 "
        f"{_fmt(rep['tick_p90_s'], '.3f', ' s')} over {rep['ticks']} ticks ({rep['ticks_sent']} "
        f"sent by beat, {rep['ticks_expired']} expired unrun in the queue; longest time without a "
        f"tick {_fmt(rep['tick_gap_max_s'], '.1f', ' s')})",
        f"  duplicates: {rep['duplicates']} (stages started twice {len(d['stages_started_twice'])}"
        f", restarted by the tick {d['stage_restart_repairs']}, games in several shards "
        f"{d.get('games_in_several_shards', '-')}, stored games missing from the ledger "
        f"{d.get('shard_games_missing_from_ledger', '-')} of {d.get('games_in_shards', '-')})",
        *(
            [
                f"    not counted: {d['games_uncollected_at_stop']} games of shards stored in the "
                "last minutes whose collect had not run when the workers stopped: "
                + ", ".join(d["shards_uncollected_at_stop"])
            ]
            if d.get("shards_uncollected_at_stop")
            else []
        ),
        f"  configurations advanced: {len(rep['configs_advanced'])} of "
        f"{len(rep['configs_requested'])}",
    ]
    for c, v in rep["configs"].items():
        lines.append(
            f"    {c:<13} g{v['generation']}  {v['games']:>4} games  stage {v['stage']}  best "
            f"{v['best_model'] or 'none'}" + ("  (under backpressure)" if v["backpressure"] else "")
        )
    lines.append("  tasks per hour:")
    for name, rate in rep["tasks_per_hour"].items():
        c = rep["task_counts"][name]
        raised = f", {c['raised']} raised" if c["raised"] else ""
        lines.append(f"    {name:<32} {rate:>8.1f}  ({c['succeeded']} succeeded{raised})")
    lines.append(
        f"  worker logs while measuring: {rep['log_errors']} errors, {rep['log_warnings']} "
        f"warnings; while stopping: {len(rep['log_errors_at_stop'])} errors; data dir "
        f"{rep['data_dir']}"
    )
    lines += [f"    {line}" for line in rep["log_excerpts"]]
    return lines

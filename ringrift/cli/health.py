"""``ringrift health``: is the service well, and if not, what is wrong, one line per problem.

It asks every part the loop depends on: the ledger and the broker answer, live workers (per host
and queue), the beat is alive (the tick writes a heartbeat), queue depths (and queues with work
but no consumer), tasks running longer than their stage's bound (from the tasks' heartbeats),
training runs whose lease expired, free disk in the data dir and cache; and it shows what the
tick repaired. ``check`` returns the report; the command exits 1 when ``problems`` is not empty.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import select, text

from ringrift.infra.queues import backlogs, queue_of_key
from ringrift.infra.service import Service
from ringrift.pipeline.heartbeat import ALIVE
from ringrift.pipeline.presets import preset
from ringrift.pipeline.repairs import BEAT_KEY, repairs
from ringrift.store.models import PipelineState, TrainingRun
from workers.runtime import DIRECT_SUFFIX

MIN_FREE_BYTES = 1 << 30  # less free disk than this (or 5%) is a problem
MIN_FREE_SHARE = 0.05
BEAT_LATE_TICKS = 3  # the beat is late after this many tick intervals without a tick
SERVICE_QUEUE = re.compile(r"gpu\d+|cpu")
QUEUE_BOUND = 100  # a queue deeper than this is a problem: work piles up faster than it goes


def _disk(path: Path) -> dict[str, Any]:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total}


def _config_of(member: str) -> str | None:
    """The configuration a heartbeat's member id names (``shard-<config>-g..``,
    ``eval-model-<config>-g..``, ``run-<config>-g../segment``)."""
    for prefix in ("shard-", "eval-model-", "run-"):
        if member.startswith(prefix):
            return member.removeprefix(prefix).split("-g", 1)[0]
    return None


def check(svc: Service, app: Any, r: redis.Redis) -> dict[str, Any]:
    problems: list[str] = []
    report: dict[str, Any] = {"problems": problems}

    # the ledger
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        report["ledger"] = "ok"
    except Exception as e:  # any driver error is the same answer: it does not answer
        report["ledger"] = f"unreachable: {e}"
        problems.append(f"ledger: {svc.engine.url.render_as_string()} does not answer ({e})")

    # the broker, and everything read through it
    try:
        r.ping()
        report["broker"] = "ok"
    except redis.RedisError as e:
        report["broker"] = f"unreachable: {e}"
        problems.append(f"broker: {app.conf.broker_url} does not answer ({e})")
        report["disk"] = _disk_report(svc, problems)
        return report

    replies = app.control.inspect(timeout=1.0).active_queues() or {}
    workers = {
        node: sorted(q["name"] for q in queues if not q["name"].endswith(DIRECT_SUFFIX))
        for node, queues in sorted(replies.items())
    }
    report["workers"] = workers
    if not workers:
        problems.append("workers: none answers; start one: celery -A ringrift worker -Q gpu0")
    consumed = {q for qs in workers.values() for q in qs}

    tick = app.conf.beat_schedule.get("pipeline-tick", {})
    interval = float(tick.get("schedule", 10.0))
    tick_queue = tick.get("options", {}).get("queue", "cpu")
    raw = r.get(BEAT_KEY)
    last = float(raw) if raw is not None else None
    age = None if last is None else time.time() - last
    report["beat"] = {"last_tick_age_s": age, "interval_s": interval}
    if age is None:
        problems.append("beat: no tick has run; start it once: celery -A ringrift beat")
    elif age > BEAT_LATE_TICKS * interval:
        problems.append(f"beat: the last tick ran {age:.0f} s ago (every {interval:.0f} s)")
    if workers and tick_queue not in consumed:
        problems.append(
            f"beat: no worker consumes {tick_queue}, where its ticks go; "
            f"start one: celery -A ringrift worker -Q {tick_queue}"
        )

    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        lists = {  # Redis lists of the service's queues (gpuN, cpu), at any priority
            queue_of_key(app, k.decode() if isinstance(k, bytes) else str(k))
            for pattern in ("gpu[0-9]*", "cpu*")
            for k in client.scan_iter(match=pattern, count=1000)
            if client.type(k) in (b"list", "list")
        }
    waiting = {q for q in lists if SERVICE_QUEUE.fullmatch(q)}
    depths = backlogs(app, sorted(consumed | waiting | {tick_queue, "gpu0"}))
    report["queues"] = depths
    for q, n in depths.items():
        if n and q not in consumed:
            problems.append(f"queue {q}: {n} tasks wait and no worker consumes it")
        elif n > QUEUE_BOUND:
            problems.append(f"queue {q}: {n} tasks wait (more than {QUEUE_BOUND})")

    with svc.session() as s:
        presets = {
            st.config: preset(st.preset, st.config) for st in s.scalars(select(PipelineState))
        }
        running_runs = list(s.scalars(select(TrainingRun).where(TrainingRun.status == "running")))
    now = time.time()
    running = []
    for key in r.scan_iter(f"{ALIVE}*"):
        member = (key.decode() if isinstance(key, bytes) else str(key)).removeprefix(ALIVE)
        held = r.get(key)
        if held is None:
            continue
        who = json.loads(held)
        config = _config_of(member)
        bound = presets[config].claim_seconds if config in presets else None
        if member.endswith("/segment"):  # a segment hands off once its time is spent
            bound = svc.settings.train_segment_seconds + svc.settings.train_lease_seconds
        entry = {"task": member, "host": who["host"], "pid": who["pid"], "for_s": now - who["at"]}
        running.append(entry)
        if bound is not None and entry["for_s"] > bound:
            problems.append(
                f"task {member}: running {entry['for_s'] / 60:.0f} min on {who['host']} "
                f"(its stage's bound is {bound / 60:.0f} min)"
            )
    report["running"] = sorted(running, key=lambda e: e["task"])

    expired = []
    for run in running_runs:
        if not r.exists(f"ringrift:lease:{run.id}"):
            expired.append(run.id)
            problems.append(
                f"training {run.id}: its lease expired at step {run.step} "
                "(the tick resumes it once its stage claim lapses)"
            )
    report["expired_leases"] = expired
    report["repairs"] = repairs(r)
    report["disk"] = _disk_report(svc, problems)
    return report


def _disk_report(svc: Service, problems: list[str]) -> list[dict[str, Any]]:
    out = []
    for path in (svc.settings.data_dir, svc.settings.cache_root):
        d = _disk(path)
        out.append(d)
        if d["free_bytes"] < max(MIN_FREE_BYTES, MIN_FREE_SHARE * d["total_bytes"]):
            problems.append(f"disk: {path} has {d['free_bytes'] / 2**30:.1f} GiB free")
    return out


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report for a person: what answers, then every problem, or "ok"."""
    lines = [f"ledger: {report.get('ledger', '?')}", f"broker: {report.get('broker', '?')}"]
    for node, queues in (report.get("workers") or {}).items():
        lines.append(f"worker {node}: {', '.join(queues) or 'no queue'}")
    beat = report.get("beat")
    if beat and beat["last_tick_age_s"] is not None:
        lines.append(f"beat: last tick {beat['last_tick_age_s']:.0f} s ago")
    if report.get("queues"):
        lines.append("queues: " + ", ".join(f"{q} {n}" for q, n in report["queues"].items()))
    for task in report.get("running") or []:
        lines.append(f"running: {task['task']} on {task['host']} for {task['for_s']:.0f} s")
    for what, n in (report.get("repairs") or {}).items():
        lines.append(f"repaired: {what}: {n}")
    for d in report.get("disk") or []:
        lines.append(f"disk: {d['path']}: {d['free_bytes'] / 2**30:.1f} GiB free")
    problems = report["problems"]
    lines += [f"PROBLEM {p}" for p in problems] or ["ok"]
    return lines

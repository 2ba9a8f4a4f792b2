"""Run faults against a fresh service and audit what its loop lost or did twice."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringrift.chaos.audit import Audit, audit
from ringrift.chaos.cluster import Cluster, Unavailable, wait_until
from ringrift.chaos.postgres import is_postgres, proxied_database
from ringrift.chaos.scenarios import (
    FAULTS,
    NEEDS_POSTGRES,
    NEEDS_SMALL_DISK,
    Strike,
    wait_done,
)

CONFIG = "square8_2p"
PRESET = "tiny"


@dataclass
class Outcome:
    """One loop hurt by ``faults`` in turn: what struck, what the audit found, how long."""

    faults: list[str]
    strikes: list[Strike]
    finished: bool
    audit: Audit
    seconds: float
    logs: Path
    errors: list[str] = field(default_factory=list)

    @property
    def lost_total(self) -> int:
        return self.audit.lost_total

    @property
    def duplicated_total(self) -> int:
        return self.audit.duplicated_total

    @property
    def facts(self) -> dict[str, Any]:
        return self.audit.facts

    def to_dict(self) -> dict[str, Any]:
        return {
            "faults": self.faults,
            "strikes": [{"struck": s.struck, "detail": s.detail} for s in self.strikes],
            "finished": self.finished,
            "lost": self.audit.lost,
            "duplicated": self.audit.duplicated,
            "facts": self.audit.facts,
            "seconds": round(self.seconds, 1),
            "logs": str(self.logs),
            "errors": self.errors,
        }


def hurt_loop(
    faults: list[str],
    workdir: Path,
    generations: int = 2,
    timeout: float = 600.0,
    database_url: str | None = None,
    alongside: tuple[str, ...] = (),
) -> Outcome:
    """Start a service in ``workdir``, run a ``generations``-generation tiny loop of
    square8_2p, strike with each of ``faults`` in turn as its moment comes, wait for the loop
    to finish (at most ``timeout`` seconds) and audit it."""
    unknown = [f for f in (*faults, *alongside) if f not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
    began = time.monotonic()
    deadline = began + timeout
    strikes: list[Strike] = []
    errors: list[str] = []
    with contextlib.ExitStack() as stack:
        ledger, proxy = None, None
        if is_postgres(database_url):
            assert database_url is not None
            ledger, proxy = stack.enter_context(proxied_database(database_url))
        elif NEEDS_POSTGRES & set(faults):
            raise Unavailable(
                f"{', '.join(sorted(NEEDS_POSTGRES & set(faults)))} needs RINGRIFT_DATABASE_URL "
                "to name a PostgreSQL server"
            )
        if NEEDS_SMALL_DISK & set(faults):
            stack.enter_context(small_disk(workdir / "data"))
        c = stack.enter_context(Cluster(workdir, database_url=ledger, proxy=proxy))
        started = c.cli(
            "pipeline", "start", CONFIG, "--preset", PRESET, "--generations", str(generations)
        )
        if started.returncode != 0:
            raise RuntimeError(f"ringrift pipeline start failed: {started.stderr.strip()}")

        def strike(name: str) -> Strike:
            try:
                return FAULTS[name](c, deadline)
            except Exception as e:  # noqa: BLE001 - reported in the outcome
                return Strike(False, f"{name}: {type(e).__name__}: {e}")

        def strike_in_turn(names: list[str], into: list[Strike]) -> None:
            into.extend(strike(name) for name in names)

        # the faults in turn, and each of ``alongside`` (a rare moment) waiting on its own
        waits = [(list(faults), strikes)] + [([name], []) for name in alongside]
        strikers = [
            threading.Thread(target=strike_in_turn, args=w, name="faults", daemon=True)
            for w in waits
        ]
        c.service()  # opened here, before the strikers' threads share it
        for striker in strikers:
            striker.start()
        finished = wait_done(c, CONFIG, max(1.0, deadline - time.monotonic()))
        c.finished.set()  # a fault still waiting for its moment will not get one
        for striker in strikers:
            striker.join(timeout=max(1.0, deadline - time.monotonic()))
        for _, more in waits[1:]:
            strikes.extend(more)
        seconds = time.monotonic() - began
        settle(c)
        report = audit(c.service(), CONFIG, generations)
        for hit in strikes:  # what a fault audits of its own (training lost to a kill)
            if hit.check is not None:
                for what, n in hit.check(c).items():
                    report.lost[what] = report.lost.get(what, 0) + n
        for name in c.procs:
            errors += [f"{name}: {line}" for line in _tracebacks(c.log_text(name))]
    return Outcome([*faults, *alongside], strikes, finished, report, seconds, c.logs, errors[:20])


@contextlib.contextmanager
def small_disk(folder: Path, megabytes: int = 256) -> Iterator[None]:
    """A tmpfs of ``megabytes`` mounted on ``folder`` for the block (root only)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        raise Unavailable(f"cannot mount a small disk on {folder}: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)


def settle(c: Cluster, timeout: float = 60.0) -> bool:
    """Let selfplay still in flight when the loop finished land: its shards' games are not
    lost, only late (their chained collect ingests them in a moment, or the tick does once
    that collect is two heartbeats overdue)."""
    from ringrift.pipeline.state import uncollected_shards

    svc = c.service()

    def landed() -> bool:
        with svc.session() as s:
            return not uncollected_shards(s, CONFIG, older_than_s=0)

    return wait_until(landed, timeout, every=1.0)


def _tracebacks(text: str) -> list[str]:
    """Lines logged at ERROR or CRITICAL (the faults cause some; kept for the reader)."""
    return [line for line in text.splitlines() if "ERROR/" in line or "CRITICAL/" in line]

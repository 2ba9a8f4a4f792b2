"""``ringrift bench faults``: hurt a real service on this machine, one fault at a time, and
report what its loop lost or did twice (the goal: nothing, and nothing).

Each fault gets a fresh service (``ringrift.chaos.cluster``: its own Redis, a SQLite ledger or a
fresh database on ``RINGRIFT_DATABASE_URL``'s PostgreSQL server, a gpu0 and a cpu worker, beat)
running a 2-generation tiny loop of square8_2p; the fault strikes when its moment comes, the
loop must finish, and the ledger and store are audited (``ringrift.chaos.audit``). A fault the
machine cannot play (``postgres-restart`` without PostgreSQL, ``disk-full`` without the right
to mount a small disk) is reported as skipped, with why."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ringrift.chaos.runner import Unavailable, hurt_loop
from ringrift.chaos.scenarios import DESCRIPTIONS, FAULTS


def chosen(only: str | None) -> list[str]:
    """The faults ``--only`` names (comma-separated), all of them without it."""
    if only is None:
        return list(FAULTS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAULTS]
    if unknown or not names:
        raise ValueError(
            f"--only: unknown fault(s) {unknown or [only]}; known: {', '.join(FAULTS)}"
        )
    return names


def run_bench(
    only: str | None,
    runs: int,
    generations: int,
    data_dir: Path | None,
    as_json: bool,
    timeout: float = 600.0,
) -> int:
    names = chosen(only)
    if not 1 <= runs <= 100:
        raise ValueError(f"--runs must be between 1 and 100, got {runs}")
    if not 1 <= generations <= 10:
        raise ValueError(f"--generations must be between 1 and 10, got {generations}")
    root = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="ringrift-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    database = os.environ.get("RINGRIFT_DATABASE_URL")
    rows: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {"fault": name, "runs": 0, "lost": 0, "duplicated": 0, "seconds": 0.0}
        row.update(struck=0, finished=0, what=DESCRIPTIONS[name], details=[])
        for i in range(runs):
            try:
                out = hurt_loop([name], root / f"{name}-{i}", generations, timeout, database)
            except Unavailable as e:
                row["skipped"] = str(e)
                print(f"{name}: skipped: {e}", file=sys.stderr, flush=True)
                break
            row["runs"] += 1
            row["struck"] += sum(s.struck for s in out.strikes)
            row["finished"] += int(out.finished)
            row["lost"] += out.lost_total
            row["duplicated"] += out.duplicated_total
            row["seconds"] = round(row["seconds"] + out.seconds, 1)
            row["details"].append(out.to_dict())
            print(
                _line(
                    name,
                    i,
                    out.finished,
                    out.lost_total,
                    out.duplicated_total,
                    out.seconds,
                    [s.detail for s in out.strikes],
                ),
                file=sys.stderr,
                flush=True,
            )
        rows.append(row)
    print(table(rows))
    print(f"logs and ledgers: {root}")
    if as_json:
        print(json.dumps(rows))
    bad = any(
        r["lost"] or r["duplicated"] or r["finished"] < r["runs"] or r["struck"] < r["runs"]
        for r in rows
    )
    return 1 if bad else 0


def _line(
    name: str, i: int, finished: bool, lost: int, dup: int, seconds: float, strikes: list[str]
) -> str:
    state = "finished" if finished else "DID NOT FINISH"
    what = "; ".join(strikes)
    return f"{name} run {i + 1}: {state} in {seconds:.0f} s, lost {lost}, duplicated {dup}; {what}"


def table(rows: list[dict[str, Any]]) -> str:
    head = ["fault", "what", "runs", "struck", "finished", "lost", "duplicated", "seconds"]
    body = [[str(r[k]) for k in head] for r in rows]
    for r, b in zip(rows, body, strict=True):
        if "skipped" in r:
            b[1] += f" (skipped: {r['skipped']})"
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)

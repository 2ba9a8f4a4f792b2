"""The status table that ``ringrift status`` prints and ``ringrift watch`` keeps refreshed.

Everything is drawn from the report of ``ringrift.cli.status.all_status``; a key the report does
not have (a configuration not started yet, or a figure the service does not produce) shows as
``-``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

ABSENT = "-"

# Piped or redirected output has no width of its own: wide enough that a row stays one row.
PIPE_WIDTH = 200


def stdout_console() -> Console:
    """rich's console on stdout; when that is not a terminal (and ``COLUMNS`` is unset),
    ``PIPE_WIDTH`` columns wide rather than rich's 80."""
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPE_WIDTH if wide else None)


def duration(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return ABSENT
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _share(value: Any) -> str:
    """A fraction as a percentage; anything else as it is."""
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return f"{value:.0%}"
    return _number(value)


def _yes_no(value: Any) -> Text:
    if value is None:
        return Text(ABSENT)
    return Text("yes", style="green") if value else Text("no", style="yellow")


def _generation(c: Mapping[str, Any]) -> str:
    target = c.get("target_generations")
    return f"{c.get('generation', 0)}{'/' + str(target) if target else ''}"


def _games(c: Mapping[str, Any]) -> Text:
    per_hour = c.get("games_per_hour")
    rate = ABSENT if per_hour is None else _number(float(per_hour), 0 if per_hour >= 10 else 1)
    return Text(f"{c.get('games_total', 0)}\n{c.get('games_new', 0)} new\n{rate}/h")


def _training(t: Mapping[str, Any] | None) -> Text:
    if not t:
        return Text(ABSENT)
    style = {"failed": "red", "cancelled": "yellow", "running": "cyan"}.get(t.get("status", ""))
    out = Text(str(t.get("run", "?")))
    out.append(f"\n{t.get('status', '?')}", style=style or "")
    out.append(f" {t.get('step', 0)}/{t.get('total_steps', '?')}")
    if t.get("loss") is not None:
        out.append(f"\nloss {t['loss']:.4f}")
    if t.get("samples_per_s"):
        out.append(f"\n{t['samples_per_s']:.0f} samples/s")
    if t.get("eta_s") is not None:
        out.append(f"\nETA {duration(t['eta_s'])}")
    if t.get("segment"):
        out.append(f"\nsegment {t['segment']}")
    if t.get("cancel_requested"):
        out.append("\ncancel requested", style="yellow")
    if t.get("error"):
        out.append(f"\nerror: {t['error']}", style="red")
    return out


def _best(c: Mapping[str, Any]) -> Text:
    """The best model (``g12`` for the pipeline's own ``model-<config>-g12``) and its
    evaluation, win-loss-draw against each opponent; then the newest decision and its
    sequential test."""
    model = c.get("best_model")
    own = f"model-{c['config']}-"
    out = Text(ABSENT if not model else model.removeprefix(own) if model.startswith(own) else model)
    ev = c.get("best_evaluation") or {}
    for opp, m in (ev.get("matches") or {}).items():
        out.append(f"\nvs {opp} {m['wins']}-{m['losses']}-{m['draws']}", style="dim")
    last = c.get("last_decision") or {}
    test = last.get("sprt")
    if test:
        name = str(last["model"])
        out.append(
            f"\n{name.removeprefix(own)} {last['status']}\nSPRT {test['verdict']} after "
            f"{test['games']}\nLLR {test['llr']:.2f} of {test['lower']:.2f}..{test['upper']:.2f}",
            style="dim",
        )
    return out


def _table() -> Table:
    """Columns apart by two spaces, a rule under the header: room for eleven columns."""
    return Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


def status_table(report: Mapping[str, Any]) -> Table:
    """One row per configuration of ``report["configs"]``."""
    table = _table()
    longest = max((len(str(c["config"])) for c in report.get("configs") or []), default=6)
    table.add_column("config", no_wrap=True, min_width=longest, style="bold")
    table.add_column("enabled", overflow="fold")
    table.add_column("preset", overflow="fold")
    table.add_column("gen", justify="right", overflow="fold")
    table.add_column("stage", overflow="fold")
    table.add_column("games", justify="right", overflow="fold")
    table.add_column("training", overflow="fold")
    table.add_column("best model", overflow="fold")
    table.add_column("rating", justify="right", overflow="fold")
    table.add_column("priority", justify="right", overflow="fold")
    table.add_column("share", justify="right", overflow="fold")
    for c in report.get("configs") or []:
        table.add_row(
            Text(str(c["config"])),
            _yes_no(c.get("enabled")),
            Text(c.get("preset") or ABSENT),
            Text(_generation(c)),
            Text(str(c.get("stage", ABSENT))),
            _games(c),
            _training(c.get("training")),
            _best(c),
            Text(_number(c.get("rating"), 0)),
            Text(_number(c.get("priority"), 2)),
            Text(_share(c.get("share"))),
        )
    return table


def queues_line(report: Mapping[str, Any]) -> Text:
    queues = report.get("queues") or {}
    line = Text("queues: ", style="bold")
    if "error" in queues:
        line.append(str(queues["error"]), style="red")
    else:
        line.append(", ".join(f"{q} {n}" for q, n in queues.items()) or "none")
    return line


def caches_table(report: Mapping[str, Any]) -> Table | None:
    """Per host and configuration, the model its cache holds; None when no host reported."""
    rows = [
        (host, c["config"], held.get("model_id"), c.get("best_model"))
        for c in report.get("configs") or []
        for host, held in (c.get("host_caches") or {}).items()
    ]
    if not rows:
        return None
    table = _table()
    table.add_column("host", no_wrap=True)
    table.add_column("config", no_wrap=True)
    table.add_column("cached model")
    for host, config, model, best in rows:
        held = Text(str(model))
        if model != best:
            held.append(" (not the best)", style="yellow")
        table.add_row(Text(host), Text(config), held)
    return table


def changes_table(report: Mapping[str, Any]) -> Table | None:
    """The scheduler's newest recorded changes, each with its reason."""
    rows = report.get("schedule_changes") or []
    if not rows:
        return None
    table = _table()
    table.title = "schedule changes"
    table.add_column("at", no_wrap=True)
    table.add_column("config", no_wrap=True)
    table.add_column("change", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for c in rows:
        change = (
            f"target {c['target']}" if c["kind"] == "target" else f"exploration {c['exploration']}"
        )
        table.add_row(str(c["at"])[:19].replace("T", " "), c["config"], change, c["reason"])
    return table


def schedule_table(rows: Sequence[Mapping[str, Any]], *, explain: bool = False) -> RenderableType:
    """``ringrift schedule``: priority, share and target per configuration; with ``explain``,
    the parts of each priority, why one gets no selfplay, and the last recorded change."""
    if not rows:
        return Text("no enabled pipelines to schedule")
    table = _table()
    for name in ("config", "priority", "share", "target", "wanted", "in flight", "new games"):
        table.add_column(name, no_wrap=True, justify="left" if name == "config" else "right")
    table.add_column("exploration", justify="right")
    table.add_column("selfplay", overflow="fold")
    for c in rows:
        table.add_row(
            c["config"],
            _number(c["priority"], 2),
            _share(c["share"]),
            str(c["target"]),
            str(c["wanted"]),
            str(c["inflight"]),
            str(c["new_games"]),
            str(c["exploration"]),
            "blocked" if c["blocked"] else "open",
        )
    if not explain:
        return table
    lines: list[RenderableType] = [table]
    for c in rows:
        why = Text(f"\n{c['config']}\n", style="bold")
        why.append(f"  priority: {c['explain']}\n")
        why.append(f"  share {_share(c['share'])} of the slots -> target {c['wanted']}")
        why.append(f" (recorded {c['target']}; it moves only past the thresholds)\n")
        if c["blocked"]:
            why.append(f"  no selfplay now: {c['blocked']}\n")
        why.append(f"  last change: {c['last_change'] or 'none recorded'}")
        lines.append(why)
    return Group(*lines)


def render_status(report: Mapping[str, Any], caption: Text | None = None) -> RenderableType:
    """The whole view: the configurations, queue depths, host caches."""
    parts: list[RenderableType] = []
    if report.get("configs"):
        parts.append(status_table(report))
    else:
        parts.append(Text("no pipelines; start one with: ringrift pipeline start square8_2p"))
    if report.get("models") is not None:
        parts.append(Text(f"models in the ledger: {report['models']}"))
    if report.get("set_aside"):
        parts.append(
            Text(
                f"files set aside as corrupt or foreign: {report['set_aside']} "
                "(ringrift quarantine lists them)",
                style="yellow",
            )
        )
    parts.append(queues_line(report))
    caches = caches_table(report)
    if caches is not None:
        parts.append(caches)
    changes = changes_table(report)
    if changes is not None:
        parts.append(changes)
    if caption is not None:
        parts.append(caption)
    return Group(*parts)


def watch_status(
    fetch: Callable[[], Mapping[str, Any]], interval: float, *, once: bool = False
) -> int:
    """``ringrift watch``: the view of ``fetch()`` every ``interval`` seconds until Ctrl-C
    (status 0). On a terminal the table is redrawn in place (``rich.live.Live``); piped, each
    frame is printed after the last. ``once``: one frame, then return."""
    console = stdout_console()
    if once:
        console.print(render_status(fetch()))
        return 0
    # Ctrl-C must stop it even where the shell started it with SIGINT ignored (a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def frame() -> RenderableType:
        try:
            report: Mapping[str, Any] | Exception = fetch()
        except Exception as e:  # noqa: BLE001 - a ledger that is down now may be back soon
            report = e
        caption = Text(
            f"at {time.strftime('%H:%M:%S')}, every {interval:g} s; Ctrl-C to stop", style="dim"
        )
        if isinstance(report, Exception):
            problem = f"status unavailable: {type(report).__name__}: {report}"
            return Group(Text(problem, style="red"), caption)
        return render_status(report, caption)

    def pause(since: float) -> None:
        time.sleep(max(0.0, interval - (time.monotonic() - since)))

    try:
        started = time.monotonic()
        if not console.is_terminal:
            while True:
                console.print(frame())
                console.print()
                console.file.flush()
                pause(started)
                started = time.monotonic()
        with Live(frame(), console=console, auto_refresh=False) as live:
            while True:
                pause(started)
                started = time.monotonic()
                live.update(frame(), refresh=True)
    except KeyboardInterrupt:
        return 0


def ratings_table(config: str, rows: Sequence[Mapping[str, Any]]) -> RenderableType:
    """``ringrift ratings``: one row per rated model or baseline, best first."""
    if not rows:
        return Text(
            f"no ratings for {config} yet: they are fitted after each evaluation "
            "(--refit fits them now from what the ledger holds)"
        )
    table = _table()
    for name in ("#", "player", "gen", "status", "rating", "95% interval", "games", "sha256"):
        right = name in ("#", "gen", "rating", "games")
        table.add_column(name, no_wrap=True, justify="right" if right else "left")
    for i, r in enumerate(rows, 1):
        model = r["model_id"]
        table.add_row(
            str(i),
            model or r["player"],
            ABSENT if r["generation"] is None else str(r["generation"]),
            r["status"],
            f"{r['rating']:.0f}",
            f"{r['low']:.0f} .. {r['high']:.0f}",
            str(r["games"]),
            r["player"][:12] if model else ABSENT,
        )
    first = rows[0]
    note = Text(
        f"\nElo, random pinned at 0; fitted from {first['chunks_fitted']} recorded chunks "
        f"at {first['fitted_at']}",
        style="dim",
    )
    return Group(table, note)


def quarantine_table(rows: Sequence[Mapping[str, Any]]) -> RenderableType:
    """``ringrift quarantine``: one row per file set aside, newest first."""
    if not rows:
        return Text("nothing set aside: every file read so far passed its checks")
    table = _table()
    for name in ("at", "kind", "artifact", "why", "replaced by", "moved to"):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["at"])[:19],
            r["kind"],
            r["artifact_id"],
            r["reason"],
            r["outcome"],
            r["moved_to"] or ABSENT,
        )
    return table

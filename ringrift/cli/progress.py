"""Progress bars for the long commands: on stderr, and only when stderr is a terminal, so piped
output, logs and tests see exactly what they saw before."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column

from ringrift.game.checker import CheckResult


def stderr_progress() -> Progress:
    """A bar (or a spinner while the total is unknown) that vanishes when done; a no-op unless
    stderr is a terminal."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn(
            "{task.fields[current]}",
            markup=False,
            table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
        ),
        console=Console(stderr=True),
        transient=True,
        expand=True,  # the case's name takes what the bar and counts leave
        disable=not sys.stderr.isatty(),
    )


def check_with_progress(paths: list[str], skip_file: str | None, progress: Progress) -> CheckResult:
    """``ringrift.game.checker.check`` with one bar over the cases: the fixtures are read first
    (so the bar knows its total), then each case runs and is filed exactly as ``check`` files
    it."""
    from ringrift.game.checker import Mismatch, discover, load_skips
    from ringrift.game.errors import RingRiftError

    skips = load_skips(skip_file)
    task = progress.add_task("reading fixtures", total=None, current="")
    cases = list(discover(paths))
    progress.update(task, description="checking", total=len(cases))
    res = CheckResult([], [], [], [])
    for case in cases:
        progress.update(task, current=case.id)
        try:
            case.run()
            error = None
        except (Mismatch, RingRiftError) as e:
            error = str(e)
        except Exception as e:  # an engine bug must show as a failure, not a crash
            error = f"{type(e).__name__}: {e}"
        if case.id in skips:
            res.skipped.append((case.id, skips[case.id]))
            if error is None:
                res.stale_skips.append(case.id)
        elif error is None:
            res.passed.append(case.id)
        else:
            res.failed.append((case.id, error))
        progress.advance(task)
    return res


def rules_check(
    paths: list[str],
    skip_file: str | None = None,
    verbose: bool = False,
    *,
    show_progress: bool | None = None,
) -> int:
    """``ringrift rules check``: ``run_check``'s output and exit status, with a bar on stderr
    while the cases run (by default when stderr is a terminal)."""
    from ringrift.game.checker import run_check

    if show_progress is None:
        show_progress = sys.stderr.isatty()
    if not show_progress:
        return run_check(paths, skip_file=skip_file, verbose=verbose)
    with stderr_progress() as progress:
        res = check_with_progress(paths, skip_file, progress)
    for cid, err in res.failed:
        print(f"FAIL {cid}: {err}")
    if verbose:
        for cid in res.passed:
            print(f"ok   {cid}")
        for cid, why in res.skipped:
            print(f"skip {cid}: {why}")
    for cid in res.stale_skips:
        print(f"note: skipped case {cid} passes now; its skip entry can go")
    print(f"{len(res.passed)} passed, {len(res.failed)} failed, {len(res.skipped)} skipped")
    return 0 if not res.failed else 1

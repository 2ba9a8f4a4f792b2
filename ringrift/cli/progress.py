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


def rules_check(
    paths: list[str],
    skip_file: str | None = None,
    verbose: bool = False,
    *,
    show_progress: bool | None = None,
) -> int:
    """``ringrift rules check``: ``run_check``'s output and exit status, with a bar on stderr
    while the cases run (by default when stderr is a terminal)."""
    from ringrift.game.checker import check, print_report, run_check

    if show_progress is None:
        show_progress = sys.stderr.isatty()
    if not show_progress:
        return run_check(paths, skip_file=skip_file, verbose=verbose)
    with stderr_progress() as progress:
        task = progress.add_task("reading fixtures", total=None, current="")
        seen = 0

        def total(n: int) -> None:
            progress.update(task, description="checking", total=n)

        def case(case_id: str) -> None:
            nonlocal seen
            progress.update(task, completed=seen, current=case_id)
            seen += 1

        res = check(paths, skip_file, on_total=total, on_case=case)
    return print_report(res, verbose)  # after the bar is gone, on stdout

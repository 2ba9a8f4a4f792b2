"""The ``ringrift`` command."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ringrift.cli import params
from ringrift.errors import StartupError

_CONTEXT = {"help_option_names": ["-h", "--help"]}
_JSON_HELP = "last line: one JSON object"


class _Group(click.Group):
    """Subcommands listed in the order they are defined; a missing one is a usage error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", False)
        super().__init__(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class _Main(_Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # `ringrift status | head`: the reader has what it wanted
            return 0


@click.group(cls=_Main, help=__doc__, context_settings=_CONTEXT)
def cli() -> None:
    pass


# --- rules ------------------------------------------------------------------------------------


@cli.group(cls=_Group, help="rules engine tools")
def rules() -> None:
    pass


@rules.command(
    "check",
    help="replay reference fixtures and compare; PATHS: fixture files or folders",
    short_help="replay reference fixtures and compare",
)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--skip-file", type=params.FILE, default=None, help="skip list (default: the packaged one)"
)
@click.option("-v", "--verbose", is_flag=True, help="print passing cases too")
def rules_check(paths: tuple[str, ...], skip_file: str | None, verbose: bool) -> int:
    from ringrift.cli.progress import rules_check as check

    return check(list(paths), skip_file=skip_file, verbose=verbose)


# --- bench ------------------------------------------------------------------------------------


@cli.group(cls=_Group, help="benchmarks")
def bench() -> None:
    pass


@bench.command("engine", help="random-play engine speed")
@click.option("--config", default="square8_2p")
@click.option("--seconds", type=params.SECONDS, default=30.0)
@click.option("--seed", type=int, default=1)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def bench_engine(config: str, seconds: float, seed: int, as_json: bool) -> int:
    from ringrift.cli.bench import bench_engine

    result = bench_engine(config, seconds, seed)
    d = result.to_dict()
    print(f"config        {d['config']}  (seed {d['seed']}, {d['seconds']} s, one core)")
    print(f"moves/s       {d['moves_per_s']}")
    print(f"games/s       {d['games_per_s']}")
    print(f"avg moves     {d['avg_moves']}  (per finished game, bookkeeping moves included)")
    print(f"games         {d['games']}  ({d['moves']} moves applied)")
    vt = ", ".join(f"{k}={v}" for k, v in sorted(result.victory_types.items())) or "none"
    print(f"victory types {vt}")
    if as_json:
        print(json.dumps(d))
    return 0


@bench.command("heuristic", help="heuristic player against random players")
@click.option("--config", default="square8_2p")
@click.option("--games", type=params.GAMES, default=200)
@click.option("--seed", type=int, default=1)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def bench_heuristic(config: str, games: int, seed: int, as_json: bool) -> int:
    from ringrift.cli.bench import bench_heuristic

    res = bench_heuristic(config, games, seed)
    d = res.to_dict()
    print(
        f"{d['config']}: heuristic won {res.wins} of {res.games} games against random "
        f"({100 * res.win_rate:.1f}%), lost {res.losses}, drew {res.draws}; {d['seconds']} s"
    )
    if as_json:
        print(json.dumps(d))
    return 0


@bench.command("train", help="training speed: the library against a bare loop")
@click.option("--config", default="square8_2p")
@click.option("--model", default="b6c64", help="architecture, e.g. b6c64")
@click.option("--steps", type=params.STEPS, default=200)
@click.option("--batch-size", type=params.BATCH, default=128)
@click.option("--seed", type=int, default=1)
@click.option(
    "--device", type=params.DEVICE, default=None, help="default: cuda when present, else cpu"
)
@click.option(
    "--threads", type=params.THREADS, default=0, help="torch threads (0: torch's default)"
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def bench_train(
    config: str,
    model: str,
    steps: int,
    batch_size: int,
    seed: int,
    device: str | None,
    threads: int,
    as_json: bool,
) -> int:
    import torch

    from ringrift.cli.bench import bench_train

    if threads:
        torch.set_num_threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    d = bench_train(config, model, steps, batch_size, seed, device)
    print(
        f"{d['config']} {d['model']} on {d['device']} ({d['threads']} threads), batch "
        f"{d['batch_size']}, {d['steps']} steps: library {d['samples_per_s']} samples/s, bare "
        f"PyTorch loop {d['bare_samples_per_s']} samples/s ({100 * float(d['ratio']):.0f}%)"  # type: ignore[arg-type]
    )
    if as_json:
        print(json.dumps(d))
    return 0


def _search_device(device: str | None, threads: int | None) -> str:
    """The device a search benchmark runs on (CUDA when there is one), its torch threads set."""
    import torch

    from ringrift.cli.bench_selfplay import default_threads

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(threads or default_threads(device))
    return device


@bench.command("selfplay", help="batched Gumbel selfplay against the bare network")
@click.option("--config", default="square8_2p")
@click.option("--model", default="b6c64", help="network shape (fresh weights)")
@click.option(
    "--model-path", type=params.FILE, default=None, help="a saved model of that shape instead"
)
@click.option("--sims", type=params.SIMS, default=64)
@click.option("--games", type=params.GAMES, default=64, help="games played at once")
@click.option("--max-moves", type=params.MOVES, default=None, help="stop games early")
@click.option("--seed", type=int, default=1)
@click.option("--device", type=params.DEVICE, default=None)
@click.option("--threads", type=params.THREADS, default=None, help="torch threads")
@click.option("--procs", type=params.PROCS, default=1, help="processes, each playing --games")
@click.option("--no-overlap", is_flag=True, help="network and search take turns in one thread")
@click.option("--json", "as_json", is_flag=True)
def bench_selfplay(
    config: str,
    model: str,
    model_path: str | None,
    sims: int,
    games: int,
    max_moves: int | None,
    seed: int,
    device: str | None,
    threads: int | None,
    procs: int,
    no_overlap: bool,
    as_json: bool,
) -> int:
    from ringrift.cli.bench_selfplay import bench_selfplay

    device = _search_device(device, threads)
    d = bench_selfplay(
        config,
        model,
        sims,
        games,
        seed,
        device,
        model_path,
        max_moves,
        procs=procs,
        overlap=not no_overlap,
    )
    share = d["share"]
    print(
        f"{d['config']} {d['model']} on {d['device']} ({d['processes']} process(es), "
        f"{d['threads']} threads each), {d['games']} games at {d['simulations']} simulations "
        f"in {d['seconds']} s: "
        f"{d['games_per_hour']} games/hour, {d['positions_per_s']} positions/s, "
        f"{d['evals_per_s']} network evaluations/s (mean batch {d['mean_batch']}); bare network "
        f"{d['bare_evals_per_s']}/s, ratio {d['ratio']}; time: network {share['network']:.0%}, "
        f"engine {share['engine']:.0%}, search {share['search']:.0%}"
    )
    if as_json:
        print(json.dumps(d))
    return 0


@bench.command("evaluate", help="a batched evaluation match against the bare network")
@click.option("--config", default="square8_2p")
@click.option("--model", default="b6c64", help="network shape (fresh weights)")
@click.option(
    "--model-path", type=params.FILE, default=None, help="a saved candidate of that shape instead"
)
@click.option(
    "--opponent",
    type=click.Choice(["network", "random", "heuristic"]),
    default="network",
    help="a second network of that shape (default), random or the heuristic player",
)
@click.option("--opponent-path", type=params.FILE, default=None, help="a saved opponent network")
@click.option("--sims", type=params.SIMS, default=64)
@click.option("--games", type=params.GAMES, default=64, help="games, all in flight at once")
@click.option("--max-moves", type=params.MOVES, default=None, help="stop games early")
@click.option("--seed", type=int, default=1)
@click.option("--device", type=params.DEVICE, default=None)
@click.option("--threads", type=params.THREADS, default=None, help="torch threads")
@click.option("--json", "as_json", is_flag=True)
def bench_evaluate(
    config: str,
    model: str,
    model_path: str | None,
    opponent: str,
    opponent_path: str | None,
    sims: int,
    games: int,
    max_moves: int | None,
    seed: int,
    device: str | None,
    threads: int | None,
    as_json: bool,
) -> int:
    from ringrift.cli.bench_evaluate import bench_evaluate

    device = _search_device(device, threads)
    d = bench_evaluate(
        config,
        model,
        sims,
        games,
        opponent=opponent,
        seed=seed,
        device=device,
        model_path=model_path,
        opponent_path=opponent_path,
        max_moves=max_moves,
    )
    c = d["candidate"]
    print(
        f"{d['config']} {d['model']} against {d['opponent']} on {d['device']} "
        f"({d['threads']} threads), {d['games']} games at {d['simulations']} simulations in "
        f"{d['seconds']} s: {d['games_per_hour']} games/hour, {d['evals_per_s']} network "
        f"evaluations/s (mean batch {d['mean_batch']}); bare network {d['bare_evals_per_s']}/s, "
        f"ratio {d['ratio']}; candidate {c['wins']}-{c['losses']}-{c['draws']}, "
        f"score {c['score']}"
    )
    if as_json:
        print(json.dumps(d))
    return 0


@bench.command(
    "cluster",
    help="the scheduler under load on this machine: N workers (N-1 GPU queues and a cpu one) "
    "and beat run every chosen configuration for M minutes in a fresh data dir; reports tasks "
    "per hour, the GPU workers' idle share, tick times, duplicates and configurations advanced",
    short_help="the scheduler under load: workers, beat and M minutes",
)
@click.option("--configs", default="all", help="all, or C1,C2,... (default all)")
@click.option(
    "--workers", type=params.WORKERS, default=6, help="N-1 GPU workers and one cpu (default 6)"
)
@click.option(
    "--minutes", type=params.MINUTES, default=20.0, help="how long to measure (default 20)"
)
@click.option("--preset", default="tiny", help="tiny (default), cpu or default")
@click.option(
    "--tick-seconds", type=params.SECONDS, default=2.0, help="the beat's tick (default 2)"
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="a new or empty folder (default: a temporary one, kept with the logs)",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def bench_cluster(
    configs: str,
    workers: int,
    minutes: float,
    preset: str,
    tick_seconds: float,
    data_dir: Path | None,
    as_json: bool,
) -> int:
    from ringrift.cli.bench_cluster import run_bench

    return run_bench(
        configs, workers, minutes, preset, tick_seconds, data_dir=data_dir, as_json=as_json
    )


@bench.command(
    "faults",
    help="what the service survives: each fault (a worker killed with SIGKILL in each stage, "
    "beat killed, Redis restarted empty, the broker away 30 s) strikes a fresh service on this "
    "machine running a tiny loop, which must finish; the ledger and store are then audited "
    "for anything lost or done twice. Exit status 1 if anything was",
    short_help="faults struck, and what the loop lost or did twice",
)
@click.option("--only", default=None, help="comma-separated fault names (default: all)")
@click.option("--runs", type=params.count(1000), default=1, help="runs of each fault (default 1)")
@click.option(
    "--generations", type=params.count(1000), default=2, help="the loop's generations (default 2)"
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="where each run keeps its ledger and logs (default: a temporary folder, kept)",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def bench_faults(
    only: str | None, runs: int, generations: int, data_dir: Path | None, as_json: bool
) -> int:
    from ringrift.cli.bench_faults import run_bench

    return run_bench(only, runs, generations, data_dir, as_json)


@bench.command(
    "strength",
    help="how strong ringrift loop gets in a set time: runs the loop for one configuration in a "
    "fresh data dir, keeps the best model at each mark (minutes), then plays each against random "
    "and the heuristic and reports scores with 95% intervals",
    short_help="the loop's best model against the baselines after M minutes",
)
@click.option("--config", default="square8_2p")
@click.option("--preset", default="cpu", help="the loop's preset (default cpu)")
@click.option(
    "--workers", type=params.WORKERS, default=2, help="the loop's device workers (default 2)"
)
@click.option("--marks", default="10,30,60", help="minutes at which to keep the best model")
@click.option(
    "--games", type=params.GAMES, default=100, help="games against each baseline (default 100)"
)
@click.option("--sims", type=params.SIMS, default=64, help="simulations per decision (default 64)")
@click.option("--seed", type=int, default=7)
@click.option(
    "--jobs", type=params.PROCS, default=2, help="matches played at once, one process each"
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="a new or empty folder (default: a temporary one, kept)",
)
@click.option(
    "--evaluate-only",
    is_flag=True,
    help="score the models an earlier run kept in --data-dir, without running the loop",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def bench_strength(
    config: str,
    preset: str,
    workers: int,
    marks: str,
    games: int,
    sims: int,
    seed: int,
    jobs: int,
    data_dir: Path | None,
    evaluate_only: bool,
    as_json: bool,
) -> int:
    from ringrift.cli.bench_strength import run_bench

    return run_bench(
        config,
        preset,
        workers,
        marks,
        games,
        sims,
        seed,
        jobs,
        data_dir=data_dir,
        evaluate_only=evaluate_only,
        as_json=as_json,
    )


# --- loop, status, watch ----------------------------------------------------------------------


@cli.command("loop", help="run the training loop on this machine")
@click.option("--config", default="square8_2p")
@click.option("--generations", type=int, default=2)
@click.option(
    "--preset",
    default="tiny",
    help="tiny (CPU minutes, tests), cpu (learns on a CPU) or default (GPU)",
)
@click.option(
    "--workers",
    type=int,
    default=1,
    help="device workers (queues gpu0, gpu1, ...), one task at a time each: one per GPU, "
    "or one per core on a CPU",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="default: $RINGRIFT_DATA_DIR",
)
@click.option(
    "--timeout",
    type=params.Seconds(most=30 * params.DAY),
    default=None,
    help="give up after this many s",
)
@click.option("--json", "as_json", is_flag=True, help="last line: one JSON summary")
@click.option(
    "--broker-port",
    type=params.PORT,
    default=None,
    help="port of the loop's own Redis on 127.0.0.1 (default: a free one), so that Flower or "
    "ringrift status can reach it",
)
def loop(
    config: str,
    generations: int,
    preset: str,
    workers: int,
    data_dir: Path | None,
    timeout: float | None,
    as_json: bool,
    broker_port: int | None,
) -> int:
    from ringrift.cli.loop import run_loop

    return run_loop(
        config,
        generations,
        preset,
        workers=workers,
        data_dir=data_dir,
        as_json=as_json,
        timeout=timeout,
        broker_port=broker_port,
    )


def _report() -> dict[str, Any]:
    from ringrift.celery import app
    from ringrift.cli.status import all_status
    from ringrift.infra.service import current

    return all_status(current(), app)


@cli.command("status", help="where each configuration's loop stands")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def status(as_json: bool) -> int:
    report = _report()
    if as_json:
        print(json.dumps(report))
        return 0
    from ringrift.cli.view import render_status, stdout_console

    stdout_console().print(render_status(report))
    return 0


@cli.command(
    "watch",
    help="the status table, refreshed every --interval seconds until Ctrl-C",
    short_help="the status table, refreshed until Ctrl-C",
)
@click.option(
    "--interval",
    type=params.SECONDS,
    default=3.0,
    help="seconds between refreshes (default 3)",
)
@click.option("--once", is_flag=True, help="render one frame and exit")
def watch(interval: float, once: bool) -> int:
    from ringrift.cli.view import watch_status

    return watch_status(_report, interval, once=once)


@cli.command(
    "ratings",
    help="a configuration's ratings (Elo, random at 0) per exact model and baseline, with 95% "
    "intervals, from every recorded evaluation; --json: one JSON list, a row per player",
    short_help="a configuration's ratings per model, with intervals",
)
@click.option("--config", "config", required=True, help="the configuration, e.g. square8_2p")
@click.option("--refit", is_flag=True, help="fit the table again from the ledger first")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def ratings(config: str, refit: bool, as_json: bool) -> int:
    from ringrift.cli.ratings import ratings_report
    from ringrift.infra.service import current

    rows = ratings_report(current(), config, again=refit)
    if as_json:
        print(json.dumps(rows))
        return 0
    from ringrift.cli.view import ratings_table, stdout_console

    stdout_console().print(ratings_table(config, rows))
    return 0


@cli.command(
    "quarantine",
    help="files set aside as corrupt or foreign: what each was, where it went, why, who found "
    "it and what replaced it, newest first; --json: one JSON list, a row per file",
    short_help="files set aside as corrupt, and what replaced them",
)
@click.option("--config", "config", default=None, help="only this configuration's")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def quarantine(config: str | None, as_json: bool) -> int:
    from ringrift.infra.service import current
    from ringrift.pipeline.quarantine import quarantine_rows
    from ringrift.pipeline.state import check_config

    if config is not None:
        check_config(config)
    with current().session() as s:
        rows = quarantine_rows(s, config)
    if as_json:
        print(json.dumps(rows))
        return 0
    from ringrift.cli.view import quarantine_table, stdout_console

    stdout_console().print(quarantine_table(rows))
    return 0


@cli.command(
    "scrub",
    help="read every artifact the ledger records straight from the store and check its "
    "sha256; set aside each that fails and rebuild it from its source where it has one "
    "(exit 1 if any failed); --json: one JSON object {checked, set_aside: [...]}",
    short_help="check every stored artifact, set aside and rebuild what fails",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def scrub(as_json: bool) -> int:
    from ringrift.infra.service import current
    from ringrift.pipeline.quarantine import scrub as scrub_store

    svc = current()
    report = scrub_store(svc, f"ringrift scrub on {svc.settings.host}")
    if as_json:
        print(json.dumps(report))
    else:
        for row in report["set_aside"]:
            print(f"{row['artifact_id']}: {row['reason']}\n  {row['outcome']}")
        print(f"{report['checked']} artifacts checked, {len(report['set_aside'])} set aside")
    return 1 if report["set_aside"] else 0


@cli.group("plot", cls=_Group, help="charts of the ledger, as PNG files")
def plot() -> None:
    pass


@plot.command(
    "ratings",
    help="rating of every evaluated model over generations and over wall-clock time (95% "
    "intervals, promoted models filled), random and the heuristic as lines; a PNG at --out",
    short_help="ratings over generations and time, as a PNG",
)
@click.option("--config", "config", required=True, help="the configuration, e.g. square8_2p")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("ratings.png"),
    show_default=True,
    help="the PNG to write",
)
def plot_ratings_command(config: str, out: Path) -> int:
    from ringrift.cli.plot import plot_ratings
    from ringrift.infra.service import current

    drawn = plot_ratings(current(), config, out)
    print(f"{out}: {drawn} models of {config}")
    return 0


@cli.command("schedule", help="each configuration's selfplay priority, share and target")
@click.option(
    "--explain", is_flag=True, help="why: the parts of each priority and the last recorded change"
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def schedule(explain: bool, as_json: bool) -> int:
    from ringrift.cli.view import schedule_table, stdout_console
    from ringrift.pipeline.scheduler import explain_schedule

    rows = explain_schedule()
    if as_json:
        print(json.dumps(rows))
        return 0
    stdout_console().print(schedule_table(rows, explain=explain))
    return 0


@cli.command(
    "health",
    help="is the service well: workers, beat, queues, long tasks, expired leases, disk, "
    "ledger and broker; one line per problem, exit status 1 if there is any",
    short_help="is the service well (exit status 1 if not)",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def health(as_json: bool) -> int:
    from ringrift.celery import app
    from ringrift.cli.health import check, summary_lines
    from ringrift.infra.service import current, redis_client

    report = check(current(), app, redis_client())
    if as_json:
        print(json.dumps(report))
    else:
        print("\n".join(summary_lines(report)))
    return 1 if report["problems"] else 0


# --- pipeline ---------------------------------------------------------------------------------


@cli.group(cls=_Group, help="start, stop or list configuration loops")
def pipeline() -> None:
    pass


def _pipeline(action: str, config: str, as_json: bool, **start: Any) -> int:
    """Start, stop or list pipelines in the ledger; the beat's next tick acts on it."""
    from ringrift.infra.service import current
    from ringrift.pipeline.state import disable_pipeline, enable_pipeline, pipeline_rows
    from ringrift.store import ensure_schema

    svc = current()
    ensure_schema(svc.settings.database_url)  # a new ledger: its tables first, as workers do
    with svc.session() as s:
        if action == "start":
            enable_pipeline(s, config, start["preset"], start["generations"], start["weight"])
        elif action == "stop":
            disable_pipeline(s, config)
        rows = pipeline_rows(s)
    if action != "list":
        rows = [r for r in rows if r["config"] == config]
    if as_json:
        print(json.dumps(rows if action == "list" else rows[0]))
        return 0
    for r in rows:
        target = "no end" if r["target_generations"] is None else f"to {r['target_generations']}"
        state = "enabled" if r["enabled"] else "stopped"
        print(
            f"{r['config']}: {state}, preset {r['preset']}, generation {r['generation']} "
            f"({target}), stage {r['stage']}, best model {r['best_model'] or 'none'}"
        )
    if not rows:
        print("no pipelines; start one with: ringrift pipeline start square8_2p")
    return 0


@pipeline.command(
    "start",
    help="enable a configuration's loop (the beat runs it); CONFIG: e.g. square8_2p",
    short_help="enable a configuration's loop (the beat runs it)",
)
@click.argument("config")
@click.option("--preset", default="default", help="tiny, cpu or default")
@click.option(
    "--generations",
    type=int,
    default=None,
    help="iterations to run (default: no end)",
)
@click.option(
    "--weight",
    type=float,
    default=None,
    help="curriculum weight: its selfplay priority is multiplied by it (default: as it was, 1)",
)
@click.option("--json", "as_json", is_flag=True)
def pipeline_start(
    config: str, preset: str, generations: int | None, weight: float | None, as_json: bool
) -> int:
    return _pipeline(
        "start", config, as_json, preset=preset, generations=generations, weight=weight
    )


@pipeline.command("stop", help="start nothing more for a configuration")
@click.argument("config")
@click.option("--json", "as_json", is_flag=True)
def pipeline_stop(config: str, as_json: bool) -> int:
    return _pipeline("stop", config, as_json)


@pipeline.command("list", help="every configuration's loop")
@click.option("--json", "as_json", is_flag=True)
def pipeline_list(as_json: bool) -> int:
    return _pipeline("list", "", as_json)


# --- train ------------------------------------------------------------------------------------


@cli.group(cls=_Group, help="act on a training run")
def train() -> None:
    pass


@train.command(
    "cancel",
    help="stop a run at its next progress report; RUN_ID: e.g. run-square8_2p-g3 "
    "(see `ringrift status`)",
    short_help="stop a run at its next progress report",
)
@click.argument("run_id")
def train_cancel(run_id: str) -> int:
    from ringrift.infra.service import current
    from ringrift.pipeline import runs

    with current().session() as s:
        run = runs.request_cancel(s, run_id)
        print(
            f"{run.id}: cancel requested at step {run.step}/{run.total_steps}; it checkpoints "
            "and stops at its next progress report"
        )
    return 0


@train.command("resume", help="let a cancelled or failed run continue")
@click.argument("run_id")
def train_resume(run_id: str) -> int:
    from ringrift.infra.service import current
    from ringrift.pipeline import runs

    with current().session() as s:
        run = runs.resume(s, run_id)
        print(
            f"{run.id}: pending again; the pipeline's next tick continues it from its newest "
            "checkpoint"
        )
    return 0


# --- demo -------------------------------------------------------------------------------------


@cli.command("demo", help="a random-vs-heuristic game, then the engine benchmark")
@click.option("--config", default="square8_2p")
@click.option("--seed", type=int, default=1)
@click.option("--seconds", type=params.SECONDS, default=10.0, help="benchmark time")
def demo(config: str, seed: int, seconds: float) -> int:
    from ringrift.cli.demo import run_demo

    return run_demo(config, seed, seconds)


def _error(message: str) -> int:
    print(f"ringrift: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit status. Bad arguments, bad input (``ValueError``, so
    ``ServiceError`` too) and a command that cannot start (``StartupError``) print one
    ``ringrift: error: ...`` line on stderr (bad arguments after the usage line) and give 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    from ringrift.infra.service import answer_at_once

    answer_at_once()
    try:
        rv = cli.main(args=args, prog_name="ringrift", standalone_mode=False)
    except click.UsageError as e:
        if e.ctx is not None:
            print(e.ctx.get_usage(), file=sys.stderr)
        return _error(e.format_message())
    except click.ClickException as e:
        print(f"ringrift: error: {e.format_message()}", file=sys.stderr)
        return e.exit_code
    except click.Abort:  # Ctrl-C outside the commands that stop on it by themselves
        return 130
    except (ValueError, StartupError) as e:
        return _error(str(e))
    return int(rv or 0)


if __name__ == "__main__":
    sys.exit(main())

"""The ``ringrift`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ringrift.errors import StartupError


def _bench_engine(args: argparse.Namespace) -> int:
    from ringrift.cli.bench import bench_engine

    result = bench_engine(args.config, args.seconds, args.seed)
    d = result.to_dict()
    print(f"config        {d['config']}  (seed {d['seed']}, {d['seconds']} s, one core)")
    print(f"moves/s       {d['moves_per_s']}")
    print(f"games/s       {d['games_per_s']}")
    print(f"avg moves     {d['avg_moves']}  (per finished game, bookkeeping moves included)")
    print(f"games         {d['games']}  ({d['moves']} moves applied)")
    vt = ", ".join(f"{k}={v}" for k, v in sorted(result.victory_types.items())) or "none"
    print(f"victory types {vt}")
    if args.json:
        print(json.dumps(d))
    return 0


def _bench_heuristic(args: argparse.Namespace) -> int:
    from ringrift.cli.bench import bench_heuristic

    res = bench_heuristic(args.config, args.games, args.seed)
    d = res.to_dict()
    print(
        f"{d['config']}: heuristic won {res.wins} of {res.games} games against random "
        f"({100 * res.win_rate:.1f}%), lost {res.losses}, drew {res.draws}; {d['seconds']} s"
    )
    if args.json:
        print(json.dumps(d))
    return 0


def _bench_train(args: argparse.Namespace) -> int:
    import torch

    from ringrift.cli.bench import bench_train

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    d = bench_train(args.config, args.model, args.steps, args.batch_size, args.seed, device)
    print(
        f"{d['config']} {d['model']} on {d['device']} ({d['threads']} threads), batch "
        f"{d['batch_size']}, {d['steps']} steps: library {d['samples_per_s']} samples/s, bare "
        f"PyTorch loop {d['bare_samples_per_s']} samples/s ({100 * float(d['ratio']):.0f}%)"  # type: ignore[arg-type]
    )
    if args.json:
        print(json.dumps(d))
    return 0


def _bench_selfplay(args: argparse.Namespace) -> int:
    import torch

    from ringrift.cli.bench_selfplay import bench_selfplay, default_threads

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads or default_threads(device))
    d = bench_selfplay(
        args.config,
        args.model,
        args.sims,
        args.games,
        args.seed,
        device,
        args.model_path,
        args.max_moves,
        procs=args.procs,
        overlap=not args.no_overlap,
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
    if args.json:
        print(json.dumps(d))
    return 0


def _rules_check(args: argparse.Namespace) -> int:
    from ringrift.game.checker import run_check

    return run_check(args.paths, skip_file=args.skip_file, verbose=args.verbose)


def _loop(args: argparse.Namespace) -> int:
    from ringrift.cli.loop import run_loop

    return run_loop(
        args.config,
        args.generations,
        args.preset,
        data_dir=args.data_dir,
        as_json=args.json,
        timeout=args.timeout,
        broker_port=args.broker_port,
    )


def _status(args: argparse.Namespace) -> int:
    from ringrift.celery import app
    from ringrift.cli.status import all_status
    from ringrift.infra.service import current

    report = all_status(current(), app)
    if args.json:
        print(json.dumps(report))
        return 0
    for c in report["configs"]:
        best = c["best_model"] or "none"
        print(
            f"{c['config']}: generation {c['generation']}"
            f"{'/' + str(c['target_generations']) if c.get('target_generations') else ''}"
            f" ({c['stage']}), games {c['games_total']} ({c['games_new']} new since the last "
            f"export), best model {best}"
        )
        for host, held in (c.get("host_caches") or {}).items():
            mark = "" if held["model_id"] == c["best_model"] else " (not the best)"
            print(f"    cache on {host}: {held['model_id']}{mark}")
        ev = c.get("best_evaluation")
        if ev:
            for opp, m in ev["matches"].items():
                print(f"    vs {opp}: {m['wins']}-{m['losses']}-{m['draws']} of {m['games']}")
        if c.get("training"):
            t = c["training"]
            loss = "" if t["loss"] is None else f", loss {t['loss']:.4f}"
            rate = "" if not t.get("samples_per_s") else f", {t['samples_per_s']:.0f} samples/s"
            eta = "" if t.get("eta_s") is None else f", ETA {_duration(t['eta_s'])}"
            cancel = ", cancel requested" if t.get("cancel_requested") else ""
            print(
                f"    training {t['run']}: {t['status']} step {t['step']}/{t['total_steps']}"
                f"{loss}{rate}{eta} (segment {t.get('segment', 0)}){cancel}"
            )
            if t.get("error"):
                print(f"    error: {t['error']}")
    print("queues: " + ", ".join(f"{q} {n}" for q, n in report["queues"].items()))
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    """Start, stop or list pipelines in the ledger; the beat's next tick acts on it."""
    from ringrift.infra.service import current
    from ringrift.pipeline.state import disable_pipeline, enable_pipeline, pipeline_rows
    from ringrift.store import ensure_schema

    svc = current()
    ensure_schema(svc.settings.database_url)  # a new ledger: its tables first, as workers do
    with svc.session() as s:
        if args.action == "start":
            enable_pipeline(s, args.config, args.preset, args.generations)
        elif args.action == "stop":
            disable_pipeline(s, args.config)
        rows = pipeline_rows(s)
    if args.action != "list":
        rows = [r for r in rows if r["config"] == args.config]
    if getattr(args, "json", False):
        print(json.dumps(rows if args.action == "list" else rows[0]))
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


def _train_cancel(args: argparse.Namespace) -> int:
    from ringrift.infra.service import current
    from ringrift.pipeline import runs

    with current().session() as s:
        run = runs.request_cancel(s, args.run_id)
        print(
            f"{run.id}: cancel requested at step {run.step}/{run.total_steps}; it checkpoints "
            "and stops at its next progress report"
        )
    return 0


def _train_resume(args: argparse.Namespace) -> int:
    from ringrift.infra.service import current
    from ringrift.pipeline import runs

    with current().session() as s:
        run = runs.resume(s, args.run_id)
        print(
            f"{run.id}: pending again; the pipeline's next tick continues it from its newest "
            "checkpoint"
        )
    return 0


def _duration(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _demo(args: argparse.Namespace) -> int:
    from ringrift.cli.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ringrift", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rules = sub.add_parser("rules", help="rules engine tools").add_subparsers(
        dest="rules_command", required=True
    )
    check = rules.add_parser("check", help="replay reference fixtures and compare")
    check.add_argument("paths", nargs="+", help="fixture files or folders")
    check.add_argument("--skip-file", default=None, help="skip list (default: the packaged one)")
    check.add_argument("-v", "--verbose", action="store_true", help="print passing cases too")
    check.set_defaults(func=_rules_check)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench_command", required=True
    )
    engine = bench.add_parser("engine", help="random-play engine speed")
    engine.add_argument("--config", default="square8_2p")
    engine.add_argument("--seconds", type=float, default=30.0)
    engine.add_argument("--seed", type=int, default=1)
    engine.add_argument("--json", action="store_true", help="last line: one JSON object")
    engine.set_defaults(func=_bench_engine)
    heur = bench.add_parser("heuristic", help="heuristic player against random players")
    heur.add_argument("--config", default="square8_2p")
    heur.add_argument("--games", type=int, default=200)
    heur.add_argument("--seed", type=int, default=1)
    heur.add_argument("--json", action="store_true", help="last line: one JSON object")
    heur.set_defaults(func=_bench_heuristic)
    tr = bench.add_parser("train", help="training speed: the library against a bare loop")
    tr.add_argument("--config", default="square8_2p")
    tr.add_argument("--model", default="b6c64", help="architecture, e.g. b6c64")
    tr.add_argument("--steps", type=int, default=200)
    tr.add_argument("--batch-size", type=int, default=128)
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    tr.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    tr.add_argument("--json", action="store_true", help="last line: one JSON object")
    tr.set_defaults(func=_bench_train)
    sp = bench.add_parser("selfplay", help="batched Gumbel selfplay against the bare network")
    sp.add_argument("--config", default="square8_2p")
    sp.add_argument("--model", default="b6c64", help="network shape (fresh weights)")
    sp.add_argument("--model-path", default=None, help="a saved model of that shape instead")
    sp.add_argument("--sims", type=int, default=64)
    sp.add_argument("--games", type=int, default=64, help="games played at once")
    sp.add_argument("--max-moves", type=int, default=None, help="stop games early")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--device", default=None)
    sp.add_argument("--threads", type=int, default=None, help="torch threads")
    sp.add_argument("--procs", type=int, default=1, help="processes, each playing --games")
    sp.add_argument(
        "--no-overlap", action="store_true", help="network and search take turns in one thread"
    )
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=_bench_selfplay)

    loop = sub.add_parser("loop", help="run the training loop on this machine")
    loop.add_argument("--config", default="square8_2p")
    loop.add_argument("--generations", type=int, default=2)
    loop.add_argument("--preset", default="tiny", help="tiny (CPU minutes) or default (GPU)")
    loop.add_argument("--data-dir", type=Path, default=None, help="default: $RINGRIFT_DATA_DIR")
    loop.add_argument("--timeout", type=float, default=None, help="give up after this many s")
    loop.add_argument("--json", action="store_true", help="last line: one JSON summary")
    loop.add_argument(
        "--broker-port",
        type=int,
        default=None,
        help="port of the loop's own Redis on 127.0.0.1 (default: a free one), so that Flower or "
        "ringrift status can reach it",
    )
    loop.set_defaults(func=_loop)

    status = sub.add_parser("status", help="where each configuration's loop stands")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)

    pipe = sub.add_parser(
        "pipeline", help="start, stop or list configuration loops"
    ).add_subparsers(dest="action", required=True)
    start = pipe.add_parser("start", help="enable a configuration's loop (the beat runs it)")
    start.add_argument("config", help="e.g. square8_2p")
    start.add_argument("--preset", default="default", help="tiny or default")
    start.add_argument(
        "--generations", type=int, default=None, help="iterations to run (default: no end)"
    )
    start.add_argument("--json", action="store_true")
    start.set_defaults(func=_pipeline)
    stop = pipe.add_parser("stop", help="start nothing more for a configuration")
    stop.add_argument("config")
    stop.add_argument("--json", action="store_true")
    stop.set_defaults(func=_pipeline)
    lst = pipe.add_parser("list", help="every configuration's loop")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_pipeline)

    train = sub.add_parser("train", help="act on a training run").add_subparsers(
        dest="train_command", required=True
    )
    cancel = train.add_parser("cancel", help="stop a run at its next progress report")
    cancel.add_argument("run_id", help="e.g. run-square8_2p-g3 (see `ringrift status`)")
    cancel.set_defaults(func=_train_cancel)
    resume = train.add_parser("resume", help="let a cancelled or failed run continue")
    resume.add_argument("run_id")
    resume.set_defaults(func=_train_resume)

    demo = sub.add_parser("demo", help="a random-vs-heuristic game, then the engine benchmark")
    demo.add_argument("--config", default="square8_2p")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--seconds", type=float, default=10.0, help="benchmark time")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return 0
    except (ValueError, StartupError) as e:
        print(f"ringrift: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

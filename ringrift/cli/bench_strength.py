"""``ringrift bench strength``: how strong ``ringrift loop`` gets on this machine in a set time.

Runs ``ringrift loop`` for one configuration in its own data dir (its own broker, workers and
beat) and, at each mark (minutes since the loop started), copies the best model the ledger names
into ``<data-dir>/strength/``. After the last mark it stops the loop, then plays every kept model
against random and the heuristic, the candidate's seat rotating, and reports each score with its
95% Wilson interval. The copies stay behind: ``--evaluate-only`` scores them again (other games,
simulations or seed) without training again, and ``ringrift plot ratings`` draws the run's
ratings from the same data dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ringrift.errors import ServiceError
from ringrift.infra.processes import interrupt_group

if TYPE_CHECKING:
    from ringrift.infra.service import Service

OPPONENTS = ("random", "heuristic")
SNAPSHOTS = "strength"
STOP_WAIT_S = 120.0  # the loop's own warm shutdown takes up to 30 s per worker


@dataclass(frozen=True)
class Snapshot:
    """The best model at one mark, as the ledger named it, and a copy of its weights."""

    minute: float
    generation: int  # the pipeline's generation at the mark
    games: int  # selfplay games in the ledger at the mark
    model_id: str | None  # None: no model promoted yet
    model_generation: int | None
    architecture: str | None
    path: str | None  # the copy in <data-dir>/strength/

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        return cls(**json.loads(path.read_text()))


@dataclass(frozen=True)
class Score:
    opponent: str
    games: int
    wins: int
    losses: int
    draws: int
    score: float
    low: float
    high: float


def parse_marks(text: str) -> list[float]:
    """``"10,30,60"`` -> ``[10.0, 30.0, 60.0]``: positive, increasing minutes, a day at most."""
    try:
        marks = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--marks must be minutes like 10,30,60, got {text!r}") from None
    if (
        not marks
        or any(not 0 < m <= 24 * 60 for m in marks)  # nan and inf fail this too
        or marks != sorted(set(marks))
    ):
        raise ValueError(f"--marks must be increasing positive minutes, got {text!r}")
    return marks


def take_snapshot(svc: Service, config: str, minute: float, folder: Path) -> Snapshot:
    """Record the ledger's best model for ``config`` now, copying its weights into ``folder``."""
    from ringrift.pipeline.state import current_best, game_count
    from ringrift.store.models import PipelineState
    from ringrift.tasks.common import model_file

    with svc.session() as s:
        st = s.get(PipelineState, config)
        if st is None:
            raise ServiceError(f"{config}: the loop has not started a pipeline in this data dir")
        best = current_best(s, st)
        snap = Snapshot(minute, int(st.generation), game_count(s, config), None, None, None, None)
        if best is not None:
            model, weights = model_file(svc, s, best)
            copy = folder / f"minute-{minute:g}.pt"
            shutil.copyfile(weights, copy)
            snap = Snapshot(
                minute,
                snap.generation,
                snap.games,
                model.id,
                model.generation,
                model.architecture,
                str(copy),
            )
    (folder / f"minute-{minute:g}.json").write_text(json.dumps(asdict(snap)))
    return snap


def saved_snapshots(folder: Path) -> list[Snapshot]:
    """The snapshots an earlier run left in ``folder``, by minute."""
    snaps = [Snapshot.load(p) for p in folder.glob("minute-*.json")]
    if not snaps:
        raise ServiceError(f"{folder}: no snapshots (minute-*.json) from an earlier run")
    return sorted(snaps, key=lambda s: s.minute)


def score_model(
    config: str, snap: Snapshot, opponent: str, games: int, sims: int, seed: int
) -> Score:
    """``games`` games of the snapshot's model (uniform search if it has none) against a
    baseline, every game in flight at once, noise-free Gumbel search at ``sims``."""
    import torch

    from ringrift.ai.gumbel import GumbelConfig
    from ringrift.ai.match import MatchSettings, NetSide, baseline_side, play_match_batched
    from ringrift.ai.mcts import Evaluator, UniformEvaluator
    from ringrift.ai.net_evaluator import load_evaluator
    from ringrift.game import GameConfig
    from ringrift.pipeline.gate import MatchScore

    torch.set_num_threads(1)
    cfg = GameConfig.parse(config)
    evaluator: Evaluator = UniformEvaluator()
    if snap.path is not None:
        assert snap.architecture is not None
        evaluator = load_evaluator(snap.path, cfg.board, snap.architecture)
    settings = MatchSettings(GumbelConfig(simulations=sims), min(games, 64), opening_moves=4)
    out = play_match_batched(
        cfg, NetSide("model", evaluator), baseline_side(opponent), range(games), seed, settings
    )
    res = out.result()
    total = sum(g.score for g in out.games)
    ms = MatchScore(opponent, res.games, res.wins, res.losses, res.draws, score_sum=total)
    low, high = ms.interval()
    return Score(
        opponent,
        res.games,
        res.wins,
        res.losses,
        res.draws,
        ms.score,
        round(low, 3),
        round(high, 3),
    )


def _score_job(args: tuple[str, Snapshot, str, int, int, int]) -> Score:
    return score_model(*args)


def score_snapshots(
    config: str, snaps: Sequence[Snapshot], games: int, sims: int, seed: int, jobs: int
) -> list[dict[str, Score]]:
    """Every snapshot against every baseline, ``jobs`` matches at a time (one process each)."""
    work = [(config, snap, opp, games, sims, seed) for snap in snaps for opp in OPPONENTS]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        scores = list(pool.map(_score_job, work))
    it = iter(scores)
    return [{opp: next(it) for opp in OPPONENTS} for _ in snaps]


def _loop_command(config: str, preset: str, workers: int, data: Path) -> list[str]:
    return [
        sys.executable, "-m", "ringrift.cli", "loop",
        "--config", config, "--preset", preset, "--workers", str(workers),
        "--generations", "100000", "--data-dir", str(data), "--json",
    ]  # fmt: skip


def run_loop_with_marks(
    config: str,
    preset: str,
    workers: int,
    marks: Sequence[float],
    data: Path,
    say: Callable[[str], None],
) -> list[Snapshot]:
    """Run the loop until the last mark, snapshotting the best model at each."""
    from ringrift.infra.service import current

    folder = data / SNAPSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"RINGRIFT_BROKER_URL", "RINGRIFT_RESULT_BACKEND"}  # a private broker
    }
    env["RINGRIFT_DATA_DIR"] = str(data)
    os.environ["RINGRIFT_DATA_DIR"] = str(data)  # this process reads the same ledger
    log_path = data / "loop.log"
    snaps: list[Snapshot] = []
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            _loop_command(config, preset, workers, data),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = time.monotonic()
    say(f"loop started (pid {proc.pid}, log {log_path}); marks at {', '.join(map(str, marks))} min")
    try:
        for minute in marks:
            while time.monotonic() - started < minute * 60:
                if proc.poll() is not None:
                    raise ServiceError(
                        f"the loop exited with status {proc.returncode} before minute {minute:g}; "
                        f"see {log_path}"
                    )
                time.sleep(min(5.0, max(0.1, started + minute * 60 - time.monotonic())))
            snap = take_snapshot(current(), config, minute, folder)
            snaps.append(snap)
            best = snap.model_id or "none (uniform search)"
            say(f"minute {minute:g}: generation {snap.generation}, {snap.games} games; best {best}")
    finally:
        interrupt_group(proc, STOP_WAIT_S)
    return snaps


def report_rows(
    snaps: Sequence[Snapshot], scores: Sequence[dict[str, Score]]
) -> list[dict[str, Any]]:
    return [
        {**asdict(snap), **{opp: asdict(score[opp]) for opp in OPPONENTS}}
        for snap, score in zip(snaps, scores, strict=True)
    ]


def _line(row: dict[str, Any]) -> str:
    best = (
        f"best g{row['model_generation']} {row['model_id']}"
        if row["model_id"]
        else "no model yet (uniform search)"
    )
    parts = [
        f"{opp} {row[opp]['score']:.2f} ({row[opp]['low']:.2f}-{row[opp]['high']:.2f})"
        for opp in OPPONENTS
    ]
    return (
        f"minute {row['minute']:g}: generation {row['generation']}, {row['games']} games, "
        f"{best}: " + ", ".join(parts)
    )


def run_bench(
    config: str,
    preset: str,
    workers: int,
    marks_text: str,
    games: int,
    sims: int,
    seed: int,
    jobs: int,
    data_dir: Path | None,
    evaluate_only: bool,
    as_json: bool,
) -> int:
    from ringrift.infra.preflight import writable_data_dir
    from ringrift.pipeline.presets import preset as find_preset
    from ringrift.pipeline.state import check_config

    check_config(config)
    find_preset(preset)
    marks = parse_marks(marks_text)
    if games < 1 or sims < 1:
        raise ValueError("--games and --sims must be at least 1")
    out: IO[str] = sys.stderr if as_json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    run = {"config": config, "preset": preset, "workers": workers}
    if evaluate_only:
        if data_dir is None:
            raise ValueError("--evaluate-only needs --data-dir: the folder of an earlier run")
        snaps = saved_snapshots(data_dir / SNAPSHOTS)
        recorded = data_dir / SNAPSHOTS / "run.json"
        if recorded.is_file():  # what the loop ran with, not this command's defaults
            run = json.loads(recorded.read_text())
        if run["config"] != config:
            raise ValueError(f"{data_dir} holds a {run['config']} run, not {config}")
    else:
        import tempfile

        data = data_dir or Path(tempfile.mkdtemp(prefix="ringrift-strength-"))
        if data.exists() and any(data.iterdir()):
            raise ValueError(f"{data}: --data-dir must be a new or empty folder")
        data = writable_data_dir(data)
        (data / SNAPSHOTS).mkdir()
        (data / SNAPSHOTS / "run.json").write_text(json.dumps(run))
        snaps = run_loop_with_marks(config, preset, workers, marks, data, say)
    say(f"playing {games} games per opponent at {sims} simulations for {len(snaps)} models")
    started = time.monotonic()
    scores = score_snapshots(config, snaps, games, sims, seed, jobs)
    rows = report_rows(snaps, scores)
    for row in rows:
        say(_line(row))
    say(f"scored in {time.monotonic() - started:.0f} s")
    if as_json:
        summary = {
            **run,
            "simulations": sims,
            "games": games,
            "marks": rows,
        }
        print(json.dumps(summary), flush=True)
    return 0

"""``ringrift bench strength``: marks, snapshots of the best model, scoring against baselines,
and the whole command around a real (short) ``ringrift loop``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from sqlalchemy import select

from ringrift.cli.bench_strength import (
    Snapshot,
    parse_marks,
    saved_snapshots,
    score_model,
    take_snapshot,
)
from ringrift.errors import ServiceError
from ringrift.pipeline.state import enable_pipeline
from ringrift.store import record_artifact
from ringrift.store.db import database_url, make_engine, session_factory
from ringrift.store.models import Model, PipelineState
from tests.ledger_harness import ledger_service
from tests.pipeline_fixtures import save_network


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringrift.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def test_marks_are_increasing_positive_minutes() -> None:
    assert parse_marks("10,30,60") == [10.0, 30.0, 60.0]
    assert parse_marks("0.5") == [0.5]
    for bad in ("", "30,10", "10,10", "0,5", "-1", "ten", "nan", "inf", "10,inf", "2000"):
        with pytest.raises(ValueError, match="--marks"):
            parse_marks(bad)


def test_snapshot_copies_the_best_model_named_by_the_ledger(tmp_path: Path) -> None:
    with ledger_service(tmp_path / "data") as svc:
        with svc.session() as s:
            enable_pipeline(s, "square8_2p", "cpu", 5)
        folder = tmp_path / "snaps"
        folder.mkdir()
        before = take_snapshot(svc, "square8_2p", 10, folder)
        assert (before.model_id, before.path, before.generation) == (None, None, 0)

        weights = save_network(tmp_path / "net.pt", "square8", "b1c8")
        ref = svc.store.put_file("model", weights, name="model-square8_2p-g3")
        with svc.session() as s:
            record_artifact(s, ref, "square8_2p")
            s.add(
                Model(
                    id=ref.id,
                    config="square8_2p",
                    generation=3,
                    architecture="b1c8",
                    encoder_version=1,
                    artifact_id=ref.id,
                    status="promoted",
                )
            )
            s.flush()
            st = s.get(PipelineState, "square8_2p")
            assert st is not None
            st.best_model_id, st.generation = ref.id, 3
        snap = take_snapshot(svc, "square8_2p", 30, folder)
    assert (snap.model_id, snap.model_generation, snap.generation) == (ref.id, 3, 3)
    assert snap.architecture == "b1c8" and snap.path is not None
    copy = Path(snap.path).read_bytes()
    assert hashlib.sha256(copy).hexdigest() == ref.sha256
    assert [s.minute for s in saved_snapshots(folder)] == [10, 30]  # read back, by minute
    assert saved_snapshots(folder)[1] == snap


def test_snapshot_without_a_pipeline_is_an_error(tmp_path: Path) -> None:
    with ledger_service(tmp_path) as svc, pytest.raises(ServiceError, match="not started"):
        take_snapshot(svc, "square8_2p", 1, tmp_path)


def test_no_saved_snapshots_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="no snapshots"):
        saved_snapshots(tmp_path)


def test_score_model_counts_every_game_with_an_interval(tmp_path: Path) -> None:
    weights = save_network(tmp_path / "net.pt", "square8", "b1c8")
    snap = Snapshot(1.0, 1, 8, "m", 1, "b1c8", str(weights))
    score = score_model("square8_2p", snap, "random", 4, 4, seed=3)
    assert score.games == 4 == score.wins + score.losses + score.draws
    assert 0.0 <= score.low <= score.score <= score.high <= 1.0
    assert score.score == pytest.approx((score.wins + 0.5 * score.draws) / 4, abs=1e-3)
    # The same seed plays the same games.
    assert score_model("square8_2p", snap, "random", 4, 4, seed=3) == score


def test_evaluate_only_scores_saved_snapshots(tmp_path: Path) -> None:
    folder = tmp_path / "strength"
    folder.mkdir()
    snap = Snapshot(10.0, 0, 0, None, None, None, None)  # no model yet: uniform search
    (folder / "minute-10.json").write_text(json.dumps(asdict(snap)))
    out = _cli(
        "bench", "strength", "--evaluate-only", "--data-dir", str(tmp_path),
        "--games", "2", "--sims", "2", "--jobs", "1", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    (row,) = data["marks"]
    assert row["minute"] == 10 and row["model_id"] is None
    assert row["random"]["games"] == 2 and row["heuristic"]["games"] == 2
    assert "no model yet (uniform search)" in out.stderr


def test_bad_arguments_are_refused_before_anything_runs(tmp_path: Path) -> None:
    out = _cli("bench", "strength", "--marks", "30,10", "--data-dir", str(tmp_path / "d"))
    assert out.returncode != 0 and "--marks" in out.stderr
    assert not (tmp_path / "d").exists()
    out = _cli("bench", "strength", "--evaluate-only")
    assert out.returncode != 0 and "--data-dir" in out.stderr
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x")
    out = _cli("bench", "strength", "--data-dir", str(used))
    assert out.returncode != 0 and "new or empty" in out.stderr


@pytest.mark.slow
def test_strength_runs_the_loop_and_keeps_the_best_at_each_mark(tmp_path: Path) -> None:
    data = tmp_path / "run"
    out = _cli(
        "bench", "strength", "--preset", "tiny", "--marks", "0.2,1.5", "--games", "2",
        "--sims", "2", "--jobs", "1", "--data-dir", str(data), "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert (report["preset"], report["workers"]) == ("tiny", 2)
    rows = report["marks"]
    assert [r["minute"] for r in rows] == [0.2, 1.5]
    assert rows[0]["games"] <= rows[1]["games"] and rows[0]["generation"] <= rows[1]["generation"]
    last = rows[1]
    assert last["generation"] >= 1, "tiny decides a candidate within 90 s"
    # The best at the mark: a copy of its weights was kept. The tiny gate may have rejected
    # every candidate decided by then (3 of 8 against random was seen); then none is kept.
    with session_factory(make_engine(database_url(data)))() as s:
        decided = list(s.scalars(select(Model).where(Model.generation <= last["generation"])))
    assert decided, "the generations the mark counted have their models in the ledger"
    if last["model_id"] is None:
        assert last["path"] is None
        assert all(m.status == "rejected" for m in decided), [(m.id, m.status) for m in decided]
    else:
        assert Path(last["path"]).is_file()
        assert last["model_id"] in {m.id for m in decided}
    # The loop was stopped (SIGINT) and said so in its summary, its processes gone.
    summary = json.loads((data / "loop.log").read_text().strip().splitlines()[-1])
    assert summary["interrupted"] == "SIGINT"

    # Scored again later: the run's own preset is reported, not this command's default.
    again = _cli(
        "bench", "strength", "--evaluate-only", "--data-dir", str(data), "--games", "2",
        "--sims", "2", "--jobs", "1", "--json",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout.strip().splitlines()[-1])
    assert report["preset"] == "tiny" and len(report["marks"]) == 2
    args = ("--evaluate-only", "--data-dir", str(data), "--config", "hex8_2p")
    other = _cli("bench", "strength", *args)
    assert other.returncode != 0 and "holds a square8_2p run" in other.stderr

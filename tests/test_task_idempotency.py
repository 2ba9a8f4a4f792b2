"""Every task delivered twice leaves the ledger as one delivery does.

Late acks and a lost worker mean any task may run again after it (or part of it) finished. Each
test delivers a stage's task a second time (to the other worker, as a redelivery after a crash
would land anywhere) to real worker subprocesses on a private Redis with a SQLite ledger, and
compares the ledger (row counts and key columns, timestamps included, so a rewritten row shows)
and the artifact store (every file's sha256 and mtime, so a rewritten file shows) before and
after. The first deliveries run the real chain: selfplay -> collect -> export -> train -> match.

Pipeline rows are disabled, so the reconciler the tasks call at their end starts nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from ringrift.pipeline.presets import TINY
from ringrift.pipeline.state import (
    candidate_name,
    dataset_name,
    evaluation_name,
    run_name,
    shard_name,
)
from ringrift.store.models import (
    Artifact,
    EvaluationMatch,
    Game,
    Model,
    PipelineState,
    TrainingRun,
)
from tests.pipeline_fixtures import (
    Pipe,
    assert_unchanged,
    diff,
    live_pipeline,
    save_network,
    scratch_dir,
    sha256_of,
)

CONFIG = "square8_2p"
PROMOTE_CONFIG = "hex8_2p"  # its own pipeline row, so promotion does not move CONFIG's generation
GEN = 0
GAMES = 4

SELFPLAY = "ringrift.selfplay.play_games"
COLLECT = "ringrift.sync.collect"
PULL = "ringrift.sync.pull"
EXPORT = "ringrift.export.build_dataset"
TRAIN = "ringrift.train.train_model"
MATCH = "ringrift.evaluate.play_match"
PROMOTE = "ringrift.promote.promote_model"


@pytest.fixture(scope="module")
def pipe(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipe]:
    with live_pipeline(redis_url, tmp_path_factory.mktemp("idempotency")) as p:
        p.add(
            PipelineState(config=CONFIG, preset="tiny", enabled=False),
            PipelineState(config=PROMOTE_CONFIG, preset="tiny", enabled=False),
        )
        yield p


def selfplay_args(batch: str) -> tuple[Any, ...]:
    return (CONFIG, GEN, batch, 0, GAMES, None, "tiny")


# --- the first delivery of each stage, in pipeline order --------------------------------------


@pytest.fixture(scope="module")
def shard(pipe: Pipe) -> dict[str, Any]:
    return pipe.run(SELFPLAY, *selfplay_args("idem"), queue="gpu0")


@pytest.fixture(scope="module")
def collected(pipe: Pipe, shard: dict[str, Any]) -> dict[str, Any]:
    return pipe.run(COLLECT, [shard], CONFIG, GEN, queue="cpu")


@pytest.fixture(scope="module")
def dataset(pipe: Pipe, collected: dict[str, Any]) -> dict[str, Any]:
    return pipe.run(EXPORT, CONFIG, GEN, "tiny", queue="gpu0")


@pytest.fixture(scope="module")
def trained(pipe: Pipe, dataset: dict[str, Any]) -> dict[str, Any]:
    # The row the reconciler would create for this iteration.
    pipe.add(
        TrainingRun(
            id=run_name(CONFIG, GEN),
            config=CONFIG,
            generation=GEN,
            dataset_artifact_id=dataset["artifact_id"],
            init_model_id=None,
            status="pending",
            total_steps=TINY.train_config().steps,
        )
    )
    return pipe.run(TRAIN, run_name(CONFIG, GEN), queue="gpu0", timeout=180)


# --- selfplay -----------------------------------------------------------------------------------


def test_selfplay_delivered_twice(pipe: Pipe, shard: dict[str, Any]) -> None:
    name = shard_name(CONFIG, GEN, "idem", 0)
    assert shard == {"artifact_id": name, "games": GAMES}
    before = pipe.snapshot()
    again = pipe.run(SELFPLAY, *selfplay_args("idem"), queue="cpu")
    assert again == shard
    assert_unchanged(before, pipe.snapshot(), "a second selfplay delivery")
    assert pipe.count("artifacts", "id = :id", id=name) == 1
    with pipe.svc.session() as s:
        row = s.get(Artifact, name)
        assert row is not None
        assert sha256_of(pipe.store_root / row.path) == row.sha256


def test_selfplay_rerun_after_a_lost_ledger_write_stores_the_identical_shard(pipe: Pipe) -> None:
    """A worker that died between storing the shard and recording it: the rerun (on another
    worker, another process) plays the same games and finds byte-identical contents."""
    name = shard_name(CONFIG, GEN, "lost", 0)
    first = pipe.run(SELFPLAY, *selfplay_args("lost"), queue="gpu0")
    recorded = pipe.snapshot()
    with pipe.svc.session() as s:
        s.execute(delete(Artifact).where(Artifact.id == name))
    again = pipe.run(SELFPLAY, *selfplay_args("lost"), queue="cpu")
    assert again == first
    assert f"stored {name}" in pipe.worker_log("cpu"), "the rerun should have played the games"
    after = pipe.snapshot()
    # The same row again (only its created_at is new) and the same file, untouched.
    assert [r[:-1] for r in after["artifacts"]] == [r[:-1] for r in recorded["artifacts"]]
    assert after["files"] == recorded["files"], "the stored shard must not be rewritten"
    assert {k: v for k, v in after.items() if k not in ("artifacts", "files")} == {
        k: v for k, v in recorded.items() if k not in ("artifacts", "files")
    }


def test_selfplay_two_copies_at_once_leave_one_shard(pipe: Pipe, tmp_path: Path) -> None:
    """Two deliveries of one selfplay task running at the same time on two workers."""
    from ringrift.ai.batched import play_batched, to_played
    from ringrift.ai.mcts import UniformEvaluator
    from ringrift.ai.selfplay import ShardHeader, write_shard
    from ringrift.game import GameConfig
    from ringrift.tasks.selfplay import game_seed

    name = shard_name(CONFIG, GEN, "twin", 0)
    before = pipe.snapshot()
    a = pipe.send(SELFPLAY, *selfplay_args("twin"), queue="gpu0")
    b = pipe.send(SELFPLAY, *selfplay_args("twin"), queue="cpu")
    results = [a.get(timeout=60), b.get(timeout=60)]
    assert results == [{"artifact_id": name, "games": GAMES}] * 2
    # Both really ran (neither found the other's row): the copies overlapped.
    for q in ("gpu0", "cpu"):
        assert f"stored {name}" in pipe.worker_log(q), f"the {q} copy did not play its games"

    changes = diff(before, pipe.snapshot())
    assert set(changes) == {"artifacts", "files"}, changes
    assert changes["artifacts"]["removed"] == [] and changes["files"]["removed"] == []
    [row] = changes["artifacts"]["added"]
    assert row[:3] == (name, "shard", f"shard/{name}")
    [(path, (sha, _mtime))] = changes["files"]["added"]
    assert path == f"shard/{name}" and sha == row[3]

    # ... and the shard is the one a single delivery writes.
    cfg = GameConfig.parse(CONFIG)
    settings = dataclasses.replace(TINY.selfplay, parallel_games=GAMES)
    seeds = [game_seed(CONFIG, GEN, "twin", 0, g) for g in range(GAMES)]
    ids = [f"{name}-{g:03d}" for g in range(GAMES)]
    games = play_batched(cfg, UniformEvaluator(), settings, seeds, ids)
    played = [to_played(g, cfg, settings, None) for g in games]
    write_shard(tmp_path / "one.jsonl.gz", ShardHeader(CONFIG, GEN, None, GAMES), played)
    assert sha256_of(tmp_path / "one.jsonl.gz") == row[3]


# --- sync ---------------------------------------------------------------------------------------


def test_collect_delivered_twice(
    pipe: Pipe, shard: dict[str, Any], collected: dict[str, Any]
) -> None:
    assert collected == {"ingested": GAMES, "shards": 1, "set_aside": []}
    before = pipe.snapshot()
    again = pipe.run(COLLECT, [shard], CONFIG, GEN, queue="gpu0")
    assert again == {"ingested": 0, "shards": 1, "set_aside": []}
    assert_unchanged(before, pipe.snapshot(), "a second collect delivery")
    assert pipe.count("games", "shard_artifact_id = :s", s=shard["artifact_id"]) == GAMES
    # Every game keeps the search that played it: settings, root values and simulations.
    with pipe.svc.session() as s:
        for game in s.scalars(select(Game).where(Game.shard_artifact_id == shard["artifact_id"])):
            assert game.search is not None
            search = json.loads(game.search)
            targets = json.loads(game.targets)
            assert search["settings"]["search"]["simulations"] == TINY.selfplay.search.simulations
            assert len(search["root_values"]) == len(search["simulations"]) == len(targets)
            assert all(0 < n <= TINY.selfplay.search.simulations for n in search["simulations"])


def test_pull_delivered_twice(pipe: Pipe, shard: dict[str, Any]) -> None:
    first = pipe.run(PULL, shard["artifact_id"], queue="gpu0")
    cached = Path(first["path"])
    stamp = (sha256_of(cached), cached.stat().st_mtime_ns)
    before = pipe.snapshot()
    assert pipe.run(PULL, shard["artifact_id"], queue="gpu0") == first
    assert (sha256_of(cached), cached.stat().st_mtime_ns) == stamp, "a verified copy is reused"
    assert_unchanged(before, pipe.snapshot(), "a second pull delivery")


# --- export -------------------------------------------------------------------------------------


def test_export_delivered_twice(pipe: Pipe, dataset: dict[str, Any]) -> None:
    name = dataset_name(CONFIG, GEN)
    assert dataset == {"artifact_id": name}
    with pipe.svc.session() as s:
        row = s.get(Artifact, name)
        assert row is not None
        sha, path = row.sha256, pipe.store_root / row.path
    before = pipe.snapshot()
    again = pipe.run(EXPORT, CONFIG, GEN, "tiny", queue="cpu")
    assert again == dataset
    assert_unchanged(before, pipe.snapshot(), "a second export delivery")
    with pipe.svc.session() as s:
        row = s.get(Artifact, name)
        assert row is not None and row.sha256 == sha
    assert sha256_of(path) == sha


# --- training -----------------------------------------------------------------------------------


def test_train_delivered_twice(pipe: Pipe, trained: dict[str, Any]) -> None:
    run_id, model_id = run_name(CONFIG, GEN), candidate_name(CONFIG, GEN)
    assert trained["model_id"] == model_id and trained["run_id"] == run_id
    assert trained["steps"] == TINY.train_config().steps
    with pipe.svc.session() as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None and run.status == "done" and run.result_model_id == model_id
    before = pipe.snapshot()
    again = pipe.run(TRAIN, run_id, queue="cpu", timeout=120)
    assert again == {"run_id": run_id, "status": "done", "model_id": model_id}
    assert_unchanged(before, pipe.snapshot(), "a second train delivery")
    stale = pipe.run(TRAIN, run_id, 0, queue="cpu", timeout=120)  # an old segment's message
    assert stale["status"] == "done"
    assert_unchanged(before, pipe.snapshot(), "an old segment's message")
    assert pipe.count("models") == 1
    assert pipe.count("artifacts", "kind = 'model'") == 1


# --- evaluation ---------------------------------------------------------------------------------


def test_play_match_delivered_twice(pipe: Pipe, trained: dict[str, Any]) -> None:
    candidate = trained["model_id"]
    args = (CONFIG, candidate, "random", 2, "tiny")
    first = pipe.run(MATCH, *args, queue="gpu0", timeout=120)
    assert first["games"] == 2 and first["wins"] + first["losses"] + first["draws"] == 2
    before = pipe.snapshot()
    again = pipe.run(MATCH, *args, queue="cpu", timeout=120)
    assert again == first
    assert_unchanged(before, pipe.snapshot(), "a second play_match delivery")
    assert pipe.count("evaluation_matches", "evaluation_id = :e", e=evaluation_name(candidate)) == 1
    # the match's next chunk is a row of its own, with its rank scores
    second = pipe.run(MATCH, *args, 2, queue="gpu0", timeout=120)
    assert second["first_game"] == 2 and second["games"] == 2
    with pipe.svc.session() as s:
        rows = s.scalars(
            select(EvaluationMatch)
            .where(EvaluationMatch.evaluation_id == evaluation_name(candidate))
            .order_by(EvaluationMatch.first_game)
        ).all()
        assert [r.first_game for r in rows] == [0, 2]
        for row in rows:
            counts = {float(v): n for v, n in json.loads(row.histogram or "{}").items()}
            assert sum(counts.values()) == row.games == 2
            assert row.score == pytest.approx(sum(v * n for v, n in counts.items()))
            assert counts.get(1.0, 0) == row.wins and counts.get(0.5, 0) == row.draws


def test_play_match_two_copies_at_once_record_one_match(
    pipe: Pipe, trained: dict[str, Any]
) -> None:
    candidate = trained["model_id"]
    args = (CONFIG, candidate, "heuristic", 2, "tiny")
    before = pipe.snapshot()
    a = pipe.send(MATCH, *args, queue="gpu0")
    b = pipe.send(MATCH, *args, queue="cpu")
    outcomes = [r.get(timeout=120, propagate=False) for r in (a, b)]
    # The ledger holds one match whichever way the race goes ...
    changes = diff(before, pipe.snapshot())
    assert (
        set(changes) == {"evaluation_matches"} and len(changes["evaluation_matches"]["added"]) == 1
    )
    # ... but both deliveries should succeed with that match's result.
    assert [a.state, b.state] == ["SUCCESS", "SUCCESS"], [a.traceback, b.traceback]
    assert outcomes[0] == outcomes[1]


# --- promotion ----------------------------------------------------------------------------------


def test_promote_delivered_twice(pipe: Pipe) -> None:
    from ringrift.ai.encoding import ENCODER_VERSION

    candidate = candidate_name(PROMOTE_CONFIG, GEN)
    weights = save_network(scratch_dir(pipe) / "model.pt", "hex8", TINY.arch)
    artifact_id = pipe.put_artifact("model", weights, candidate, PROMOTE_CONFIG)
    pipe.add(
        Model(
            id=candidate,
            config=PROMOTE_CONFIG,
            generation=GEN + 1,
            architecture=TINY.arch,
            encoder_version=ENCODER_VERSION,
            artifact_id=artifact_id,
            status="candidate",
        ),
    )
    evaluation = evaluation_name(candidate)
    pipe.add(
        *(
            EvaluationMatch(
                evaluation_id=evaluation,
                config=PROMOTE_CONFIG,
                candidate_id=candidate,
                opponent=opponent,
                games=8,
                wins=wins,
                losses=8 - wins,
                draws=0,
            )
            for opponent, wins in (("random", 8), ("heuristic", 6))
        )
    )
    first = pipe.run(PROMOTE, PROMOTE_CONFIG, GEN, candidate, queue="cpu")
    assert first == {"candidate_id": candidate, "outcome": "promoted"}
    with pipe.svc.session() as s:
        st = s.get(PipelineState, PROMOTE_CONFIG)
        assert st is not None and st.best_model_id == candidate and st.generation == GEN + 1
        version = st.version

    before = pipe.snapshot()
    again = pipe.run(PROMOTE, PROMOTE_CONFIG, GEN, candidate, queue="gpu0")
    assert again == {"candidate_id": candidate, "outcome": "already decided"}
    time.sleep(0.5)  # let the first delivery's broadcast (cache pulls only) settle
    assert_unchanged(before, pipe.snapshot(), "a second promote delivery")
    with pipe.svc.session() as s:
        st = s.get(PipelineState, PROMOTE_CONFIG)
        assert st is not None
        assert (st.best_model_id, st.generation, st.version) == (candidate, GEN + 1, version)
        model = s.get(Model, candidate)
        assert model is not None and model.status == "promoted"

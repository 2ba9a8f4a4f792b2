"""Corrupt, truncated, swapped and missing files: each is refused, moved aside with its reason
recorded in the ledger, and replaced from its source where it has one (a SQLite ledger and a
folder store in this process; the collect task's path through a real worker is in
``test_faults``' loop and ``test_task_bad_input``)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from ringrift.ai.dataset import DatasetError
from ringrift.ai.selfplay import PlayedGame, read_shard
from ringrift.errors import ServiceError
from ringrift.game import GameConfig
from ringrift.infra.service import Service
from ringrift.pipeline import runs
from ringrift.pipeline.ledger_games import export_window
from ringrift.pipeline.quarantine import (
    BEING_REPLACED,
    FOLDER,
    confirmed,
    quarantine_rows,
    scrub,
    set_aside,
    set_aside_artifact,
    usable_dataset,
    was_set_aside,
)
from ringrift.pipeline.state import (
    candidate_name,
    collect_shards,
    dataset_name,
    enable_pipeline,
    ingest_shard,
    run_name,
    shard_name,
)
from ringrift.store import ArtifactCorrupt, record_artifact
from ringrift.store.artifacts import sha256_file
from ringrift.store.models import Artifact, Game, Model, TrainingRun
from ringrift.tasks.common import model_file
from tests.celery_harness import run_cli
from tests.ledger_harness import ledger_service
from tests.pipeline_fixtures import play_shard, save_network
from training.checkpoint import checkpoint_path
from training.config import TrainConfig
from training.loop import train

CONFIG = "square8_2p"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    with ledger_service(tmp_path) as service:
        with service.session() as s:
            enable_pipeline(s, CONFIG, "tiny")
        yield service


def _store_shard(svc: Service, tmp: Path, batch: str, seeds: list[int], **kw: object) -> str:
    name = shard_name(CONFIG, 0, batch, 0)
    path = tmp / f"{name}.jsonl.gz"
    play_shard(path, CONFIG, seeds, name, **kw)  # type: ignore[arg-type]
    ref = svc.store.put_file("shard", path, name=name, config=CONFIG)
    with svc.session() as s:
        record_artifact(s, ref, CONFIG)
    return name


def _good_and_bad(svc: Service, tmp: Path, batch: str) -> tuple[str, str]:
    """Two stored one-game shards, the second with a byte flipped."""
    good = _store_shard(svc, tmp, f"{batch}g", [9])
    bad = _store_shard(svc, tmp, f"{batch}b", [10])
    _flip(svc.store.root / "shard" / bad)
    return good, bad


def _ingest(svc: Service, name: str) -> int | None:
    with svc.session() as s:
        artifact = s.get(Artifact, name)
        assert artifact is not None
        return ingest_shard(svc, s, artifact, "the test")


def _flip(path: Path) -> bytes:
    """Flip one byte in the middle of ``path``; returns the damaged contents."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def _only_row(svc: Service) -> dict[str, object]:
    with svc.session() as s:
        [row] = quarantine_rows(s)
    return row


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _games(svc: Service, shard: str | None = None) -> int:
    q = select(func.count()).select_from(Game)
    if shard is not None:
        q = q.where(Game.shard_artifact_id == shard)
    with svc.session() as s:
        return int(s.scalar(q) or 0)


def test_an_uncollected_shard_failing_its_checksum_is_moved_aside_and_its_games_played_again(
    svc: Service, tmp_path: Path
) -> None:
    name = _store_shard(svc, tmp_path, "b1", [1, 2])
    damaged = _flip(svc.store.root / "shard" / name)

    assert _ingest(svc, name) is None
    row = _only_row(svc)
    assert row["artifact_id"] == name and row["kind"] == "shard" and row["config"] == CONFIG
    assert "ArtifactCorrupt" in str(row["reason"]) and "expected sha256" in str(row["reason"])
    assert row["found_by"] == "the test"
    assert "selfplay plays them again" in str(row["outcome"])
    moved = svc.store.root / str(row["moved_to"])
    assert str(row["moved_to"]).startswith(f"{FOLDER}/shard/{name}.")
    assert moved.read_bytes() == damaged  # kept as found, for a person to look at
    assert not (svc.store.root / "shard" / name).exists()
    with svc.session() as s:
        assert s.get(Artifact, name) is None  # the scheduler counts its games as never played
        assert was_set_aside(s, name)
    assert _games(svc) == 0

    # Selfplay replays the shard under its own name (a redelivery does): nothing collides.
    again = _store_shard(svc, tmp_path, "b1", [1, 2])
    assert _ingest(svc, again) == 2


def test_a_shard_whose_games_do_not_replay_is_set_aside_though_its_checksum_holds(
    svc: Service, tmp_path: Path
) -> None:
    def wrong_winner(games: list[PlayedGame]) -> None:
        games[1].winner = 2 if games[1].winner != 2 else 1

    name = _store_shard(svc, tmp_path, "b2", [3, 4], edit=wrong_winner)
    assert _ingest(svc, name) is None
    row = _only_row(svc)
    assert "ShardError" in str(row["reason"]) and "line 3: winner" in str(row["reason"])
    assert _games(svc) == 0


def test_a_shard_of_another_configuration_is_set_aside(svc: Service, tmp_path: Path) -> None:
    """A swapped file that carries its own right checksum: hex8 games recorded as square8's."""
    name = shard_name(CONFIG, 0, "b3", 0)
    path = tmp_path / "foreign.jsonl.gz"
    play_shard(path, "hex8_2p", [5], name)
    ref = svc.store.put_file("shard", path, name=name, config=CONFIG)
    with svc.session() as s:
        record_artifact(s, ref, CONFIG)
    assert _ingest(svc, name) is None
    assert "holds hex8_2p games, recorded as square8_2p" in str(_only_row(svc)["reason"])


def test_a_missing_shard_is_recorded_with_nothing_to_move(svc: Service, tmp_path: Path) -> None:
    name = _store_shard(svc, tmp_path, "b4", [6])
    (svc.store.root / "shard" / name).unlink()
    assert _ingest(svc, name) is None
    row = _only_row(svc)
    assert row["moved_to"] is None and "FileNotFoundError" in str(row["reason"])


def test_a_collected_shard_found_corrupt_is_rebuilt_from_its_games_in_the_ledger(
    svc: Service, tmp_path: Path
) -> None:
    name = _store_shard(svc, tmp_path, "b5", [7, 8])
    original = (svc.store.root / "shard" / name).read_bytes()
    assert _ingest(svc, name) == 2
    (svc.store.root / "shard" / name).write_bytes(original[: len(original) // 2])  # truncated

    assert _ingest(svc, name) == 0  # the worker's verified copy is read, not the store's

    report = scrub(svc, "scrub by the test")  # reads the store itself
    assert report["checked"] == 1 and [r["artifact_id"] for r in report["set_aside"]] == [name]
    row = _only_row(svc)
    assert row["found_by"] == "scrub by the test" and "ArtifactCorrupt" in str(row["reason"])
    assert "rebuilt from its 2 games in the ledger (sha256 checked)" in str(row["outcome"])
    rebuilt = svc.store.root / "shard" / name
    assert rebuilt.read_bytes() == original
    header, games = read_shard(rebuilt)
    assert header.games == 2 and [g["id"] for g in games] == [f"{name}-000", f"{name}-001"]
    assert _games(svc, name) == 2  # the games were never touched


def test_the_tick_sets_a_corrupt_shard_aside_and_collects_the_others(
    svc: Service, tmp_path: Path
) -> None:
    good, bad = _good_and_bad(svc, tmp_path, "b6")
    with svc.session() as s:
        assert collect_shards(svc, s, CONFIG, older_than_s=0) == [good]
    with svc.session() as s:  # a second tick finds nothing left to look at
        assert collect_shards(svc, s, CONFIG, older_than_s=0) == []
    assert _only_row(svc)["artifact_id"] == bad
    assert _games(svc, good) == 1 and _games(svc, bad) == 0


def test_a_checksum_error_the_store_does_not_confirm_is_a_transfer_to_retry(
    svc: Service, tmp_path: Path
) -> None:
    name = _store_shard(svc, tmp_path, "b8", [11])
    rel, sha = f"shard/{name}", sha256_file(svc.store.root / "shard" / name)
    in_transit = ArtifactCorrupt(f"cache copy of {rel}", sha, "0" * 64)
    assert not confirmed(svc.store, rel, sha, in_transit)
    _flip(svc.store.root / rel)
    assert confirmed(svc.store, rel, sha, in_transit)


def _export(svc: Service, tmp: Path) -> tuple[str, bytes]:
    """Generation 0's dataset of the games in the ledger, stored and recorded as export does."""
    name = dataset_name(CONFIG, 0)
    path = tmp / "dataset.npz"
    with svc.session() as s:
        export_window(s, GameConfig.parse(CONFIG), 0, 1000, path)
        ref = svc.store.put_file("dataset", path, name=name, config=CONFIG)
        record_artifact(s, ref, CONFIG)
    return name, path.read_bytes()


def test_a_corrupt_dataset_is_exported_again_from_the_same_games_byte_for_byte(
    svc: Service, tmp_path: Path
) -> None:
    assert _ingest(svc, _store_shard(svc, tmp_path, "c1", [12, 13])) == 2
    name, original = _export(svc, tmp_path)
    # Games that came in after the export are not in its window: the rebuild leaves them out.
    assert _ingest(svc, _store_shard(svc, tmp_path, "c2", [14])) == 1
    _flip(svc.store.root / "dataset" / name)

    path = usable_dataset(svc, name, "the test")
    assert path.read_bytes() == original
    assert (svc.store.root / "dataset" / name).read_bytes() == original
    row = _only_row(svc)
    assert row["kind"] == "dataset" and "ArtifactCorrupt" in str(row["reason"])
    assert str(row["outcome"]).startswith("rebuilt from the window of up to")
    assert str(row["outcome"]).endswith("in the ledger (sha256 checked)")


def test_a_deleted_dataset_is_rebuilt_and_one_that_cannot_be_says_why(
    svc: Service, tmp_path: Path
) -> None:
    assert _ingest(svc, _store_shard(svc, tmp_path, "c3", [15, 16])) == 2
    name, original = _export(svc, tmp_path)
    for _ in range(2):  # lost again after its rebuild: rebuilt again
        (svc.store.root / "dataset" / name).unlink()
        (svc.cache.root / "dataset" / name).unlink(missing_ok=True)  # a worker new to it
        assert usable_dataset(svc, name, "the test").read_bytes() == original

    with svc.session() as s:  # one of its games is gone: the rebuild cannot match
        s.execute(delete(Game).where(Game.id == f"{shard_name(CONFIG, 0, 'c3', 0)}-001"))
    _flip(svc.store.root / "dataset" / name)
    (svc.cache.root / "dataset" / name).unlink()  # a worker that has no copy of it yet
    with pytest.raises(DatasetError, match=f"dataset {name} was set aside .* not rebuilt"):
        usable_dataset(svc, name, "the test")
    with svc.session() as s:
        rows = quarantine_rows(s)
    assert [r["kind"] for r in rows] == ["dataset"] * 3
    assert str(rows[0]["outcome"]).startswith("not rebuilt: the window")
    for row in rows[1:]:
        assert "FileNotFoundError" in str(row["reason"])
        assert str(row["outcome"]).startswith("rebuilt from the window")


def test_a_dataset_whose_arrays_disagree_is_refused_by_structure(
    svc: Service, tmp_path: Path
) -> None:
    """A file with a right checksum but foreign contents (a shard stored as a dataset)."""
    name = dataset_name(CONFIG, 0)
    shard = tmp_path / "not-a-dataset"
    play_shard(shard, CONFIG, [17], "x")
    ref = svc.store.put_file("dataset", shard, name=name, config=CONFIG)
    with svc.session() as s:
        record_artifact(s, ref, CONFIG)
    with pytest.raises(DatasetError, match="set aside .DatasetError: .*not a readable dataset"):
        usable_dataset(svc, name, "the test")
    row = _only_row(svc)
    assert str(row["outcome"]).startswith("not rebuilt")
    assert json.loads(json.dumps(row)) == row  # what ``ringrift quarantine --json`` prints


def _record_model(svc: Service, weights: Path, model_id: str, **extra: object) -> None:
    """Store ``weights`` as generation 1's model ``model_id`` (a b2c16) and record it."""
    ref = svc.store.put_file("model", weights, name=model_id, config=CONFIG)
    with svc.session() as s:
        record_artifact(s, ref, CONFIG)
        s.add(
            Model(
                id=model_id,
                config=CONFIG,
                generation=1,
                architecture="b2c16",
                encoder_version=1,
                artifact_id=model_id,
                **extra,
            )
        )


def test_a_corrupt_model_with_no_run_to_rebuild_it_is_set_aside_and_every_load_says_so(
    svc: Service, tmp_path: Path
) -> None:
    model_id = "model-square8_2p-g1"
    _record_model(svc, save_network(tmp_path / "weights.pt", "square8", "b2c16"), model_id)
    _flip(svc.store.root / "model" / model_id)
    errors = []
    for _ in range(2):  # the first load sets it aside; the next finds it gone, and says why
        with svc.session() as s, pytest.raises(ServiceError, match="were set aside") as e:
            model_file(svc, s, model_id)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "(ArtifactCorrupt: artifact " in errors[0]
    row = _only_row(svc)  # recorded once
    assert row["kind"] == "model" and row["moved_to"]
    assert str(row["outcome"]).startswith(
        f"not replaced: no training run is recorded for {model_id}; the model cannot be played"
    )


def _trained_model(svc: Service, tmp: Path) -> tuple[str, str, bytes]:
    """A model trained from a recorded dataset as the training task trains one (its
    checkpoints recorded in the ledger, the task's metadata), its run marked done; the
    model's id, its run's and its bytes."""
    assert _ingest(svc, _store_shard(svc, tmp, "m1", [20, 21])) == 2
    dataset, _ = _export(svc, tmp)
    run_id, model_id = run_name(CONFIG, 0), candidate_name(CONFIG, 0)
    config = TrainConfig.tiny().replace(
        arch="b2c16", steps=8, batch_size=16, checkpoint_every=4, ema_decay=0.9,
        validation_every=4,
    )  # fmt: skip
    with svc.session() as s:
        s.add(
            TrainingRun(
                id=run_id,
                config=CONFIG,
                generation=0,
                dataset_artifact_id=dataset,
                total_steps=config.steps,
                lease_token=1,
                status="running",
            )
        )
    folder = svc.working_dir("runs", run_id)

    def on_checkpoint(step: int, sha256: str, size: int) -> None:
        with svc.session() as s:
            path = f"runs/{run_id}/{checkpoint_path(folder, step).name}"
            runs.record_checkpoint(s, run_id, 1, step, path, sha256, size)

    out = tmp / "model.pt"
    result = train(
        config,
        svc.store.root / "dataset" / dataset,
        out,
        board="square8",
        checkpoint_dir=folder,
        generation=1,
        meta={"config": CONFIG, "run_id": run_id},
        on_checkpoint=on_checkpoint,
    )
    _record_model(svc, out, model_id, training_run_id=run_id, status="candidate")
    with svc.session() as s:
        assert runs.finish(s, run_id, 1, model_id, result.steps, 0.0)
    return model_id, run_id, out.read_bytes()


def test_a_corrupt_model_is_written_again_from_its_runs_final_checkpoint_byte_for_byte(
    svc: Service, tmp_path: Path
) -> None:
    model_id, run_id, original = _trained_model(svc, tmp_path)
    stored = svc.store.root / "model" / model_id
    _flip(stored)
    with svc.session() as s:
        _, path = model_file(svc, s, model_id)
    assert path.read_bytes() == original and stored.read_bytes() == original
    row = _only_row(svc)
    assert row["kind"] == "model" and "ArtifactCorrupt" in str(row["reason"])
    assert row["outcome"] == f"rebuilt from {run_id}'s final checkpoint (step 8) (sha256 checked)"

    # Its dataset lost too: that is exported again first, then the model written again.
    stored.unlink()
    (svc.cache.root / "model" / model_id).unlink(missing_ok=True)
    for root in (svc.store.root, svc.cache.root):  # a worker new to it
        (root / "dataset" / dataset_name(CONFIG, 0)).unlink(missing_ok=True)
    with svc.session() as s:
        assert model_file(svc, s, model_id)[1].read_bytes() == original
    with svc.session() as s:
        outcomes = [(r["kind"], str(r["outcome"])[:12]) for r in quarantine_rows(s)]
    assert outcomes == [  # newest first: the dataset was found missing while the model was
        ("dataset", "rebuilt from"),
        ("model", "rebuilt from"),
        ("model", "rebuilt from"),
    ]


def _being_replaced(svc: Service, model_id: str, found_by: str) -> None:
    """The ledger and store as a worker leaves them while it rebuilds ``model_id``: the file
    moved into quarantine, its record saying it is being replaced."""
    with svc.session() as s:
        artifact = s.get(Artifact, model_id)
        assert artifact is not None
        set_aside(
            svc,
            s,
            artifact_id=model_id,
            kind="model",
            config=CONFIG,
            path=artifact.path,
            sha256=artifact.sha256,
            reason=f"ArtifactCorrupt: as {found_by} found it",
            found_by=found_by,
            outcome=BEING_REPLACED,
        )


def test_a_rebuild_cut_short_by_its_workers_death_is_done_by_the_next_reader(
    svc: Service, tmp_path: Path
) -> None:
    """The fault suite found a model stuck "being replaced": the evaluation worker rebuilding
    it was killed after the file moved aside. Here the ledger and store are left as that
    death leaves them: the file in quarantine, its record saying it is being replaced."""
    model_id, run_id, original = _trained_model(svc, tmp_path)
    _being_replaced(svc, model_id, found_by="a worker killed mid-rebuild")
    assert not (svc.store.root / "model" / model_id).exists()
    with svc.session() as s:
        assert model_file(svc, s, model_id)[1].read_bytes() == original
    row = _only_row(svc)  # the same record, now with its outcome
    assert row["found_by"] == "a worker killed mid-rebuild"
    assert str(row["outcome"]).startswith(f"rebuilt from {run_id}'s final checkpoint")


def test_a_second_reader_of_the_same_bad_bytes_replaces_it_under_the_first_record(
    svc: Service, tmp_path: Path
) -> None:
    """Two workers read a corrupt model at once. The first moved it aside and is rebuilding it;
    the second, whose own read failed its checksum just before the file moved, finds the file
    gone from the store and the first one's record: it adds no second record."""
    model_id, run_id, original = _trained_model(svc, tmp_path)
    stored = svc.store.root / "model" / model_id
    damaged = _flip(stored)
    _being_replaced(svc, model_id, found_by="the first worker")
    with svc.session() as s:
        artifact = s.get(Artifact, model_id)
        assert artifact is not None
        error = ArtifactCorrupt(stored, artifact.sha256, sha256_bytes(damaged))
        assert confirmed(svc.store, artifact.path, artifact.sha256, error)  # the file is gone
        outcome = set_aside_artifact(svc, s, artifact, error, "the second worker").outcome
    assert outcome == f"rebuilt from {run_id}'s final checkpoint (step 8) (sha256 checked)"
    assert stored.read_bytes() == original
    row = _only_row(svc)
    assert (row["found_by"], row["outcome"]) == ("the first worker", outcome)


def test_a_model_whose_final_checkpoint_is_gone_is_not_passed_off_as_rebuilt(
    svc: Service, tmp_path: Path
) -> None:
    model_id, run_id, _ = _trained_model(svc, tmp_path)
    with svc.session() as s:  # the final checkpoint's record lost: nothing to resume from
        newest = runs.newest_checkpoint(s, run_id)
        assert newest is not None and newest.step == 8
        s.delete(newest)
    _flip(svc.store.root / "model" / model_id)
    with svc.session() as s, pytest.raises(ServiceError, match="were set aside") as e:
        model_file(svc, s, model_id)
    assert f"not replaced: {run_id}: its final checkpoint (step 8) is not recorded" in str(e.value)


def test_a_rebuilt_model_of_other_bytes_is_refused_by_its_recorded_sha256(
    svc: Service, tmp_path: Path
) -> None:
    """As a host whose arithmetic differs from the trainer's would write it: the ledger
    recorded other bytes than the final checkpoint gives (a swapped file's sha256 here)."""
    model_id, run_id, original = _trained_model(svc, tmp_path)
    swapped = "ab" * 32
    with svc.session() as s:
        s.execute(update(Artifact).where(Artifact.id == model_id).values(sha256=swapped))
    with svc.session() as s, pytest.raises(ServiceError, match="were set aside") as e:
        model_file(svc, s, model_id)
    assert (
        f"not rebuilt: {run_id}'s final checkpoint (step 8) gave sha256 "
        f"{sha256_bytes(original)}, not the recorded {swapped}; the model cannot be played"
    ) in str(e.value)
    assert not (svc.store.root / "model" / model_id).exists()  # the original is set aside


def test_the_scrub_and_quarantine_commands_report_what_was_set_aside(
    svc: Service, tmp_path: Path
) -> None:
    good, bad = _good_and_bad(svc, tmp_path, "d1")
    env = {
        **os.environ,
        "RINGRIFT_DATA_DIR": str(tmp_path),
        "RINGRIFT_DATABASE_URL": svc.settings.database_url,
        "RINGRIFT_ARTIFACT_URL": str(svc.store.root),
    }
    scrubbed = run_cli(env, "scrub", "--json")
    assert scrubbed.returncode == 1, scrubbed.stderr  # something failed its check
    report = json.loads(scrubbed.stdout)
    assert report["checked"] == 2 and [r["artifact_id"] for r in report["set_aside"]] == [bad]
    again = run_cli(env, "scrub")
    assert again.returncode == 0 and "1 artifacts checked, 0 set aside" in again.stdout
    listed = run_cli(env, "quarantine", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["artifact_id"] == bad and row["found_by"].startswith("ringrift scrub on ")
    table = run_cli(env, "quarantine", "--config", CONFIG)
    assert bad in table.stdout and "selfplay" in table.stdout
    refused = run_cli(env, "quarantine", "--config", "square9_2p")
    assert refused.returncode != 0 and "square9_2p" in refused.stderr
    with svc.session() as s:
        assert s.get(Artifact, good) is not None

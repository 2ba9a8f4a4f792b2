"""The ledger (on SQLite and on PostgreSQL) and the artifact store.

Every ledger test runs twice: on a SQLite file under ``tmp_path``, and on PostgreSQL in a database
made for this test session (each test in its own schema), dropped at the end. Where PostgreSQL
does not answer at ``$RINGRIFT_TEST_POSTGRES_URL`` (default: the local server as ``postgres``),
the PostgreSQL variants are skipped, saying so.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, create_engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import NullPool

from ringrift.store import (
    ArtifactConflict,
    ArtifactCorrupt,
    ArtifactRef,
    ArtifactStore,
    LocalCache,
    cas_best_model,
    database_url,
    ensure_schema,
    ingest_games,
    make_engine,
    migrate,
    record_artifact,
    session_factory,
)
from ringrift.store.db import alembic_config, downgrade, normalize_url
from ringrift.store.models import Artifact, Base, Game, Model, PipelineState
from tests.pg_harness import fresh_database

TABLES = {
    "artifacts",
    "checkpoints",
    "evaluation_matches",
    "games",
    "models",
    "rating_fits",
    "pipeline_state",
    "quarantine",
    "ratings",
    "schedule_changes",
    "training_runs",
}
CONFIG = "square8_2p"
HEAD = "0009"  # the newest migration


# --- databases --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[URL]:
    """A fresh PostgreSQL database for this test session; skips if the server does not answer."""
    with fresh_database("ringrift_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ledger database: a SQLite file, or a fresh schema in the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    base: URL = request.getfixturevalue("pg_database")
    schema = f"t_{secrets.token_hex(6)}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    migrate(db_url)
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _head(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def _artifact(session: Session, artifact_id: str = "shard-0000", kind: str = "shard") -> str:
    ref = ArtifactRef(artifact_id, kind, f"{kind}/{artifact_id}", "ab" * 32, 10, CONFIG)
    record_artifact(session, ref)
    return artifact_id


def _model(session: Session, model_id: str) -> str:
    artifact_id = _artifact(session, f"model-{model_id}", "model")
    session.add(
        Model(
            id=model_id,
            config=CONFIG,
            generation=1,
            architecture="b4c64",
            encoder_version=1,
            artifact_id=artifact_id,
        )
    )
    session.flush()
    return model_id


def _game_rows(n: int, shard: str, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"game-{i:04d}",
            "config": CONFIG,
            "generation": 0,
            "seed": 2**40 + i,
            "record": '{"version":1,"config":"square8_2p","moves":[]}',
            "targets": "[]",
            "winner": 1 + i % 2,
            "ranking": [1, 2] if i % 2 == 0 else [2, 1],
            "length": 100 + i,
            "termination": "ring_elimination",
            "shard_artifact_id": shard,
        }
        for i in range(start, start + n)
    ]


# --- migrations -------------------------------------------------------------------------------


def test_migrate_creates_every_table_and_twice_is_a_no_op(db_url: str) -> None:
    migrate(db_url)
    eng = make_engine(db_url)
    try:
        assert set(inspect(eng).get_table_names()) == TABLES | {"alembic_version"}
        assert _revision(eng) == _head(db_url) == HEAD
        with session_factory(eng)() as s:
            _artifact(s)
            s.commit()

        ensure_schema(db_url)  # the same upgrade, as every worker runs it at start-up
        assert set(inspect(eng).get_table_names()) == TABLES | {"alembic_version"}
        assert _revision(eng) == HEAD
        with eng.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Artifact)) == 1
            assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        eng.dispose()


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrate_indexes_and_foreign_keys(engine: Engine) -> None:
    insp = inspect(engine)
    game_indexes = {tuple(ix["column_names"]) for ix in insp.get_indexes("games")}
    assert {("config", "generation"), ("config", "created_at")} <= game_indexes
    run_fks = {
        fk["constrained_columns"][0]: fk["referred_table"]
        for fk in insp.get_foreign_keys("training_runs")
    }
    assert run_fks == {
        "dataset_artifact_id": "artifacts",
        "init_model_id": "models",
        "result_model_id": "models",
    }


def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    migrate(db_url)
    downgrade(db_url, "base")
    eng = make_engine(db_url)
    try:
        assert set(inspect(eng).get_table_names()) == {"alembic_version"}
        assert _revision(eng) is None
        migrate(db_url)
        assert set(inspect(eng).get_table_names()) == TABLES | {"alembic_version"}
    finally:
        eng.dispose()


def test_a_ledger_of_first_rules_games_upgrades_and_keeps_them(db_url: str) -> None:
    # A ledger as it stood before games recorded their rules version: its games and models
    # are kept, marked as played and trained under the first rules, and export leaves the
    # games out while they stay in the ledger.
    from ringrift.game import RULES_VERSION
    from ringrift.pipeline.ledger_games import LedgerGames
    from ringrift.pipeline.state import game_count

    migrate(db_url, "0004")
    eng = make_engine(db_url)
    try:
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO artifacts (id, kind, path, sha256, size, config) "
                    "VALUES ('shard-old', 'shard', 'shard/shard-old', :sha, 10, :config)"
                ),
                {"sha": "ab" * 32, "config": CONFIG},
            )
            for row in _game_rows(3, "shard-old"):
                cols = ", ".join(row)
                conn.execute(
                    text(f"INSERT INTO games ({cols}) VALUES ({', '.join(':' + c for c in row)})"),
                    {**row, "ranking": json.dumps(row["ranking"])},
                )
        migrate(db_url)
        assert _revision(eng) == HEAD
        with session_factory(eng)() as s:
            assert {g.rules_version for g in s.scalars(select(Game))} == {1}
            ingest_games(s, _game_rows(2, "shard-old", start=10))
            s.commit()
            versions = sorted(g.rules_version for g in s.scalars(select(Game)))
            assert versions == [1, 1, 1, RULES_VERSION, RULES_VERSION]
            assert game_count(s, CONFIG) == 2
            window = LedgerGames(s, CONFIG, generation=0, limit=100)
            assert [g["id"] for g in window] == ["game-0010", "game-0011"]
    finally:
        eng.dispose()


@pytest.mark.parametrize("trained_under", ["first rules", "current rules"])
def test_a_best_model_of_other_rules_is_neither_played_nor_trained_from(
    sessions: sessionmaker[Session], trained_under: str
) -> None:
    from ringrift.game import RULES_VERSION
    from ringrift.pipeline.state import current_best, opponents_for

    with sessions() as s:
        best = _model(s, "model-square8_2p-g1")
        s.get_one(Model, best).rules_version = (
            1 if trained_under == "first rules" else RULES_VERSION
        )
        s.add(PipelineState(config=CONFIG, best_model_id=best))
        s.commit()
        st = s.get_one(PipelineState, CONFIG)
        if trained_under == "first rules":
            assert current_best(s, st) is None
            assert opponents_for(current_best(s, st)) == ["random", "heuristic"]
        else:
            assert current_best(s, st) == best
            assert opponents_for(current_best(s, st)) == ["random", "heuristic", best]


def test_concurrent_migrations_run_one_after_the_other(db_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(db_url)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    eng = make_engine(db_url)
    try:
        assert _revision(eng) == HEAD
        assert set(inspect(eng).get_table_names()) >= TABLES
    finally:
        eng.dispose()


# --- games ------------------------------------------------------------------------------------


def test_ingest_games_twice_inserts_once(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        shard = _artifact(s)
        rows = _game_rows(5, shard)
        assert ingest_games(s, rows) == 5
        s.commit()
    with sessions() as s:  # a redelivered collect of the same shard
        assert ingest_games(s, rows) == 0
        assert ingest_games(s, rows + _game_rows(2, shard, start=5)) == 2
        assert ingest_games(s, [rows[0], rows[0], *_game_rows(1, shard, start=7)] * 2) == 1
        assert ingest_games(s, []) == 0
        s.commit()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Game)) == 8
        game = s.get(Game, "game-0003")
        assert game is not None
        assert game.ranking == [2, 1]
        assert game.seed == 2**40 + 3
        assert game.created_at is not None


def test_ingest_games_rejects_unknown_columns_and_unrecorded_shards(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as s:
        shard = _artifact(s)
        with pytest.raises(ValueError, match="unknown columns"):
            ingest_games(s, [{**_game_rows(1, shard)[0], "winnner": 1}])
        with pytest.raises(ValueError, match="no string id"):
            ingest_games(s, [{**_game_rows(1, shard)[0], "id": None}])
        s.commit()
    with sessions() as s, pytest.raises(IntegrityError):
        # Foreign keys hold on SQLite too: a game cannot point at a shard the ledger lacks.
        ingest_games(s, _game_rows(1, "shard-never-recorded"))


# --- best model -------------------------------------------------------------------------------


def test_cas_best_model_moves_once_and_refuses_a_stale_expectation(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as s:
        m1, m2, m3 = (_model(s, m) for m in ("m1", "m2", "m3"))
        s.add(PipelineState(config=CONFIG))
        s.commit()
        state = s.get(PipelineState, CONFIG)
        assert state is not None
        assert (state.best_model_id, state.version) == (None, 1)

        assert cas_best_model(s, CONFIG, None, m1) is True
        s.commit()
        # The loaded object follows the row the database changed.
        assert (state.best_model_id, state.version) == (m1, 2)

        assert cas_best_model(s, CONFIG, None, m2) is False  # stale: the best is m1 now
        assert cas_best_model(s, CONFIG, m2, m3) is False
        assert cas_best_model(s, "hex8_3p", None, m2) is False  # no pipeline row
        assert cas_best_model(s, CONFIG, m1, m2) is True
        s.commit()

        state.stage = "training"  # an ORM write after the CAS is based on the current version
        s.commit()
    with sessions() as s:
        state = s.get(PipelineState, CONFIG)
        assert state is not None
        assert (state.best_model_id, state.stage, state.version) == (m2, "training", 4)


def test_two_promotions_from_the_same_best_model_one_wins(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as s:
        _model(s, "m1")
        _model(s, "m2")
        s.add(PipelineState(config=CONFIG))
        s.commit()
    with sessions() as a, sessions() as b:
        seen_a = a.get(PipelineState, CONFIG)
        seen_b = b.get(PipelineState, CONFIG)
        assert seen_a is not None and seen_b is not None
        assert seen_a.best_model_id is None and seen_b.best_model_id is None
        assert cas_best_model(a, CONFIG, None, "m1") is True
        a.commit()
        assert cas_best_model(b, CONFIG, None, "m2") is False
        b.commit()
        # b's object still carries the old version, so an ORM write from it fails loudly.
        seen_b.stage = "evaluating"
        with pytest.raises(StaleDataError):
            b.commit()
    with sessions() as s:
        state = s.get(PipelineState, CONFIG)
        assert state is not None
        assert (state.best_model_id, state.stage) == ("m1", "selfplay")


# --- artifacts in the ledger ------------------------------------------------------------------


def test_record_artifact_is_idempotent_and_refuses_other_contents(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ref = ArtifactStore(tmp_path / "store").put_bytes("dataset", b"samples", config=CONFIG)
    with sessions() as s:
        row = record_artifact(s, ref)
        assert (row.id, row.sha256, row.size, row.config) == (ref.id, ref.sha256, 7, CONFIG)
        s.commit()
    with sessions() as s:
        assert record_artifact(s, ref).id == ref.id
        assert s.scalar(select(func.count()).select_from(Artifact)) == 1
        other = ArtifactRef(ref.id, ref.kind, ref.path, "0" * 64, ref.size)
        with pytest.raises(ArtifactConflict, match=ref.id):
            record_artifact(s, other)
        with pytest.raises(ValueError, match="unknown artifact kind"):
            record_artifact(s, ArtifactRef("x-1", "tensor", "tensor/x-1", "0" * 64, 1))


# --- configuration ----------------------------------------------------------------------------


def test_database_url_defaults_to_sqlite_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RINGRIFT_DATABASE_URL", raising=False)
    assert database_url(tmp_path) == f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("RINGRIFT_DATABASE_URL", "postgresql://u:p%40ss@db:5432/ringrift")
    assert database_url(tmp_path) == "postgresql://u:p%40ss@db:5432/ringrift"
    url = normalize_url(database_url(tmp_path))
    assert url.drivername == "postgresql+psycopg"
    assert url.password == "p@ss"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_engine_uses_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'sub' / 'ledger.sqlite3'}")
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        eng.dispose()


# --- the artifact store -----------------------------------------------------------------------


def _flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_put_and_read_round_trip(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    data = os.urandom(3 * (1 << 20) + 17)  # more than one chunk
    ref = store.put_bytes("shard", data, config=CONFIG)
    assert ref.kind == "shard"
    assert ref.id.startswith("shard-") and len(ref.id) == len("shard-") + 16
    assert ref.path == f"shard/{ref.id}"
    assert ref.size == len(data)
    assert ref.config == CONFIG
    assert store.path_of(ref) == tmp_path / "store" / "shard" / ref.id
    assert store.read(ref) == data
    assert store.read(ref.path, ref.sha256) == data
    with store.open(ref) as f:
        assert f.read() == data
    assert ArtifactRef.from_dict(ref.to_dict()) == ref

    # The same contents again: the same artifact, the file left alone.
    assert store.put_bytes("shard", data) == ArtifactRef(
        ref.id, "shard", ref.path, ref.sha256, len(data)
    )

    src = tmp_path / "weights.pt"
    src.write_bytes(b"weights")
    model = store.put_file("model", src, name="model-square8_2p-g1")
    assert (model.id, model.path, model.size) == (
        "model-square8_2p-g1",
        "model/model-square8_2p-g1",
        7,
    )
    assert store.read(model) == b"weights"
    assert store.put_file("model", src, name="model-square8_2p-g1") == model

    with pytest.raises(ValueError, match="needs the sha256"):
        store.read(ref.path)
    with pytest.raises(ValueError, match="inside the store"):
        store.read("../outside", ref.sha256)


def test_a_name_never_changes_contents(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put_bytes("dataset", b"large dataset", name="dataset-square8_2p-g3")
    with pytest.raises(ArtifactConflict, match="refusing to replace"):
        store.put_bytes("dataset", b"small", name="dataset-square8_2p-g3")
    assert store.read(ref) == b"large dataset"
    with pytest.raises(ValueError, match="unknown artifact kind"):
        store.put_bytes("tensor", b"x")
    with pytest.raises(ValueError, match="must match"):
        store.put_bytes("model", b"x", name="../escape")
    assert _all_files(tmp_path) == ["dataset/dataset-square8_2p-g3"]


def test_a_flipped_byte_is_artifact_corrupt_naming_the_path(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put_bytes("model", b"network weights " * 100)
    path = store.path_of(ref)
    _flip_byte(path, 700)
    with pytest.raises(ArtifactCorrupt) as excinfo:
        store.read(ref)
    err = excinfo.value
    assert isinstance(err, ValueError)
    assert err.path == path
    assert err.expected == ref.sha256 and err.actual != ref.sha256
    assert str(path) in str(err) and ref.sha256 in str(err) and err.actual in str(err)
    with pytest.raises(ArtifactCorrupt, match=str(path)):
        store.open(ref)


def test_local_cache_pulls_verified_copies_and_replaces_corrupt_ones(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    cache = LocalCache(tmp_path / "cache", store)
    ref = store.put_bytes("model", b"best model weights")

    local = cache.pull(ref.id, ref.path, ref.sha256)
    assert local == tmp_path / "cache" / ref.path
    assert local.read_bytes() == b"best model weights"
    assert cache.pull_ref(ref) == local

    _flip_byte(local)  # the cached copy rots
    assert cache.pull(ref.id, ref.path, ref.sha256) == local
    assert local.read_bytes() == b"best model weights"

    local.unlink()
    _flip_byte(store.path_of(ref))  # the store's copy rots: loud, and nothing cached
    with pytest.raises(ArtifactCorrupt, match=str(store.path_of(ref))):
        cache.pull(ref.id, ref.path, ref.sha256)
    assert _all_files(tmp_path / "cache") == []

    _flip_byte(store.path_of(ref))  # repaired; a cached corrupt copy is never returned
    local.write_bytes(b"stale")
    assert cache.pull(ref.id, ref.path, ref.sha256).read_bytes() == b"best model weights"


def test_writes_are_atomic_and_leave_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path / "store")
    cache = LocalCache(tmp_path / "cache", store)
    refs = [store.put_bytes("shard", bytes([i]) * 1000) for i in range(3)]
    src = tmp_path / "ckpt"
    src.write_bytes(b"checkpoint")
    refs.append(store.put_file("checkpoint", src, name="checkpoint-run1-000100"))
    for ref in refs:
        cache.pull_ref(ref)
    assert _all_files(tmp_path / "store") == sorted(r.path for r in refs)
    assert _all_files(tmp_path / "cache") == sorted(r.path for r in refs)

    def broken_replace(a: Any, b: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put_bytes("shard", b"never lands")
    (tmp_path / "cache" / refs[0].path).unlink()
    with pytest.raises(OSError, match="disk full"):
        cache.pull_ref(refs[0])
    monkeypatch.undo()
    with pytest.raises(IsADirectoryError):  # fails while writing the temporary file
        store.put_file("shard", tmp_path)
    assert _all_files(tmp_path / "store") == sorted(r.path for r in refs)
    assert _all_files(tmp_path / "cache") == sorted(r.path for r in refs[1:])
    cache.pull_ref(refs[0])

    missing = ArtifactRef("shard-gone", "shard", "shard/shard-gone", "0" * 64, 1)
    with pytest.raises(FileNotFoundError):
        cache.pull_ref(missing)
    assert _all_files(tmp_path / "cache") == sorted(r.path for r in refs)

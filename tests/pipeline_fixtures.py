"""A live pipeline for task tests: private Redis, real worker subprocesses, a SQLite ledger.

``live_pipeline`` makes a data dir, migrates its ledger, points this test process (Celery app and
``ringrift.infra.service.current()``) and the workers at it, and starts one real
``celery -A ringrift worker`` per queue (each with its own cache, as on separate nodes). The
``Pipe`` it yields sends tasks, waits for them, and snapshots the ledger and the artifact store
so a test can say "this delivery changed nothing" or "exactly these rows appeared".

Test helpers that build inputs in this process (shards, model files, datasets) write through the
same store and ledger the workers use, the way a producer on another node would.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from celery.result import AsyncResult
from sqlalchemy import text

import ringrift.infra.service
from ringrift.celery import app
from ringrift.store import migrate, record_artifact
from ringrift.store.db import database_url
from tests.celery_harness import celery_env, point_app_at, wait_for_worker, worker

if TYPE_CHECKING:
    from ringrift.ai.selfplay import PlayedGame

# The key columns of every ledger table the tasks write: enough to see a second row, a moved
# pointer, a rewritten row (timestamps) or a changed status.
LEDGER_COLUMNS: dict[str, tuple[str, ...]] = {
    "artifacts": ("id", "kind", "path", "sha256", "size", "config", "created_at"),
    "games": (
        "id",
        "config",
        "generation",
        "model_id",
        "seed",
        "length",
        "winner",
        "shard_artifact_id",
        "created_at",
    ),
    "models": (
        "id",
        "config",
        "generation",
        "architecture",
        "artifact_id",
        "parent_id",
        "training_run_id",
        "status",
        "decision",
        "created_at",
    ),
    "training_runs": (
        "id",
        "config",
        "generation",
        "dataset_artifact_id",
        "init_model_id",
        "status",
        "step",
        "total_steps",
        "result_model_id",
        "error",
        "segment",
        "cancel_requested",
        "updated_at",
    ),
    "checkpoints": ("run_id", "step", "path", "sha256", "size", "lease_token", "created_at"),
    "evaluation_matches": (
        "id",
        "evaluation_id",
        "candidate_id",
        "opponent",
        "games",
        "wins",
        "losses",
        "draws",
        "created_at",
    ),
    "pipeline_state": (
        "config",
        "enabled",
        "generation",
        "best_model_id",
        "stage",
        "last_export_game_count",
        "version",
        "updated_at",
    ),
}

Snapshot = dict[str, Any]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Pipe:
    data_dir: Path
    env: dict[str, str]
    log_dir: Path

    @property
    def svc(self) -> ringrift.infra.service.Service:
        return ringrift.infra.service.current()

    @property
    def store_root(self) -> Path:
        return self.svc.store.root

    # --- tasks ------------------------------------------------------------------------------

    def send(self, name: str, *args: Any, queue: str = "gpu0") -> AsyncResult:
        return app.send_task(name, args=args, queue=queue)

    def run(self, name: str, *args: Any, queue: str = "gpu0", timeout: float = 60) -> Any:
        """Deliver ``name(*args)`` once to ``queue`` and return its result (raising on failure)."""
        return self.send(name, *args, queue=queue).get(timeout=timeout)

    def fail(
        self, name: str, *args: Any, queue: str = "gpu0", timeout: float = 60
    ) -> tuple[BaseException, str]:
        """Deliver a task that must fail; return the exception and the worker's traceback."""
        result = self.send(name, *args, queue=queue)
        outcome = result.get(timeout=timeout, propagate=False)
        assert result.state == "FAILURE", f"{name}{args} should fail, got {result.state}: {outcome}"
        assert isinstance(outcome, BaseException), outcome
        return outcome, str(result.traceback or "")

    def worker_log(self, name: str) -> str:
        return (self.log_dir / f"worker-{name}.log").read_text(errors="replace")

    # --- what the ledger and the store hold -------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Row counts and key columns of the ledger, plus every file in the artifact store."""
        snap: Snapshot = {}
        with self.svc.engine.connect() as conn:
            for table, cols in LEDGER_COLUMNS.items():
                rows = conn.execute(
                    text(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {cols[0]}")  # noqa: S608
                ).all()
                snap[table] = [tuple(r) for r in rows]
        files = {}
        if self.store_root.exists():
            for p in sorted(self.store_root.rglob("*")):
                if p.is_file():
                    st = p.stat()
                    files[str(p.relative_to(self.store_root))] = (sha256_of(p), st.st_mtime_ns)
        snap["files"] = files
        return snap

    def count(self, table: str, where: str = "1=1", **params: Any) -> int:
        with self.svc.engine.connect() as conn:
            return int(
                conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE {where}"),  # noqa: S608
                    params,
                ).scalar_one()
            )

    def add(self, *rows: Any) -> None:
        """Insert ORM rows into the ledger from this process (test setup)."""
        with self.svc.session() as s:
            for row in rows:
                s.add(row)
                s.flush()

    def put_artifact(self, kind: str, path: Path, name: str, config: str | None) -> str:
        """Store a file and record it in the ledger, as a producer task would; returns the id."""
        ref = self.svc.store.put_file(kind, path, name=name, config=config)
        with self.svc.session() as s:
            record_artifact(s, ref, config)
        return ref.id


def diff(before: Snapshot, after: Snapshot) -> dict[str, dict[str, list[Any]]]:
    """Per table (and ``files``): what was added and what was removed, by whole row."""
    out: dict[str, dict[str, list[Any]]] = {}
    for key in before.keys() | after.keys():
        if key == "files":
            b = set(before.get(key, {}).items())
            a = set(after.get(key, {}).items())
        else:
            b, a = set(before.get(key, [])), set(after.get(key, []))
        if a != b:
            out[key] = {"added": sorted(a - b, key=repr), "removed": sorted(b - a, key=repr)}
    return out


def assert_unchanged(before: Snapshot, after: Snapshot, what: str) -> None:
    changes = diff(before, after)
    assert not changes, f"{what} changed the ledger or the artifact store: {changes}"


def _flush_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()
    finally:
        client.close()


@contextlib.contextmanager
def live_pipeline(
    redis_url: str, base: Path, queues: tuple[str, ...] = ("gpu0", "cpu")
) -> Iterator[Pipe]:
    """A migrated ledger under ``base/data`` and one worker per queue, all stopped afterwards."""
    data_dir = base / "data"
    log_dir = base / "logs"
    data_dir.mkdir(parents=True)
    log_dir.mkdir()
    env = celery_env(redis_url, data_dir)
    point_app_at(env)
    _flush_redis(redis_url)  # nothing another module left queued may reach these workers
    with pytest.MonkeyPatch.context() as mp, contextlib.ExitStack() as stack:
        mp.setenv("RINGRIFT_DATA_DIR", str(data_dir))
        mp.delenv("RINGRIFT_DATABASE_URL", raising=False)
        mp.setattr(ringrift.infra.service, "_current", None)
        migrate(database_url(data_dir))
        for q in queues:
            stack.enter_context(worker({**env, "RINGRIFT_CACHE_NAME": q}, q, q, log_dir))
        for q in queues:
            wait_for_worker(q, timeout=90)
        pipe = Pipe(data_dir, env, log_dir)
        try:
            yield pipe
        finally:
            svc = ringrift.infra.service._current
            if svc is not None:
                svc.engine.dispose()
            ringrift.infra.service._current = None


# --- inputs built in this process ----------------------------------------------------------------


def play_shard(
    path: Path,
    config: str,
    seeds: list[int],
    prefix: str,
    generation: int = 0,
    edit: Callable[[list[PlayedGame]], None] | None = None,
) -> list[dict[str, Any]]:
    """Write a shard of real (short-search) selfplay games to ``path``; returns the game dicts.

    ``edit`` may change the played games before ``write_shard`` writes them (a broken record
    in an otherwise well-formed, correctly checksummed shard).
    """
    from ringrift.ai.mcts import SearchConfig, UniformEvaluator
    from ringrift.ai.selfplay import SelfplaySettings, ShardHeader, play_game, write_shard
    from ringrift.game import GameConfig

    settings = SelfplaySettings(SearchConfig(simulations=4, batch_size=4), temperature_moves=10)
    cfg = GameConfig.parse(config)
    games = [
        play_game(cfg, UniformEvaluator(), settings, seed, f"{prefix}-{i:03d}")
        for i, seed in enumerate(seeds)
    ]
    if edit is not None:
        edit(games)
    write_shard(path, ShardHeader(config, generation, None, len(games)), games)
    return [g.to_json() for g in games]


def save_network(path: Path, board: str, arch: str, seed: int = 0) -> Path:
    """A freshly initialised network of ``arch`` for ``board``, saved with its metadata."""
    import torch

    from ringrift.ai.network import PolicyValueNet, save_model

    torch.manual_seed(seed)
    save_model(path, PolicyValueNet(board, arch))
    return path


def scratch_dir(pipe: Pipe) -> Path:
    """A temporary folder on the data dir's file system (removed with the data dir)."""
    return Path(tempfile.mkdtemp(dir=pipe.data_dir, prefix="test-"))


__all__ = [
    "LEDGER_COLUMNS",
    "Pipe",
    "Snapshot",
    "assert_unchanged",
    "diff",
    "live_pipeline",
    "play_shard",
    "save_network",
    "scratch_dir",
    "sha256_of",
]

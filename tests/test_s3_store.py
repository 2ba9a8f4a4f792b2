"""The artifact store on S3, against a real S3-compatible server (SeaweedFS on loopback): the
folder store's properties hold there too."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from ringrift.store import ArtifactConflict, ArtifactCorrupt, ArtifactRef, LocalCache
from ringrift.store.s3 import S3ArtifactStore, parse_s3_url
from tests.conftest import S3_BUCKET as BUCKET
from tests.s3_harness import client


@pytest.fixture
def raw(s3_endpoint: str) -> Any:
    return client(s3_endpoint)


@pytest.fixture
def store(raw: Any, request: pytest.FixtureRequest) -> S3ArtifactStore:
    # a prefix per test: tests share the server, never each other's objects
    return S3ArtifactStore(f"s3://{BUCKET}/t/{request.node.name}", client=raw)


def test_urls_name_a_bucket_and_a_plain_prefix() -> None:
    assert parse_s3_url("s3://b-1/runs/east/") == ("b-1", "runs/east")
    assert parse_s3_url("s3://b-1") == ("b-1", "")
    for bad in ("file:///tmp/x", "s3:///nobucket", "s3://b/a/../c", "s3://b/a//c"):
        with pytest.raises(ValueError):
            parse_s3_url(bad)


def test_put_and_read_back_verified(store: S3ArtifactStore, raw: Any, tmp_path: Path) -> None:
    src = tmp_path / "shard.bin"
    src.write_bytes(b"games" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    ref = store.put_file("shard", src, config="square8_2p")
    assert ref == ArtifactRef(
        f"shard-{digest[:16]}", "shard", f"shard/shard-{digest[:16]}", digest, 5000, "square8_2p"
    )
    head = raw.head_object(Bucket=BUCKET, Key=store.key_of(ref.path))
    assert head["Metadata"]["sha256"] == digest and head["ContentLength"] == 5000
    assert store.read(ref) == src.read_bytes()
    with store.open(ref.path, digest) as f:
        assert f.read() == src.read_bytes()
    # the same contents again: the same ref, nothing rewritten
    assert store.put_bytes("shard", src.read_bytes(), config="square8_2p") == ref


def test_a_name_never_changes_contents(store: S3ArtifactStore) -> None:
    first = store.put_bytes("model", b"weights v1", name="model-square8_2p-g1")
    assert store.put_bytes("model", b"weights v1", name="model-square8_2p-g1") == first
    with pytest.raises(ArtifactConflict, match="refusing to replace"):
        store.put_bytes("model", b"weights v2", name="model-square8_2p-g1")
    assert store.read(first) == b"weights v1"


def test_a_corrupt_object_is_refused_and_never_cached(
    store: S3ArtifactStore, raw: Any, tmp_path: Path
) -> None:
    ref = store.put_bytes("dataset", b"samples" * 100)
    key = store.key_of(ref.path)
    raw.put_object(Bucket=BUCKET, Key=key, Body=b"tampered", Metadata={"sha256": ref.sha256})
    with pytest.raises(ArtifactCorrupt, match=f"s3://{BUCKET}/{key} is corrupt"):
        store.read(ref)
    cache = LocalCache(tmp_path / "cache", store)
    with pytest.raises(ArtifactCorrupt):
        cache.pull_ref(ref)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))
    # storing the right contents again repairs a content-addressed object
    assert store.put_bytes("dataset", b"samples" * 100) == ref
    assert cache.pull_ref(ref).read_bytes() == b"samples" * 100


def test_the_cache_pulls_verifies_and_refetches_a_damaged_copy(
    store: S3ArtifactStore, tmp_path: Path
) -> None:
    ref = store.put_bytes("model", b"net" * 50, name="model-hex8_2p-g2")
    cache = LocalCache(tmp_path / "cache", store)
    local = cache.pull_ref(ref)
    assert local == tmp_path / "cache" / "model" / "model-hex8_2p-g2"
    assert local.read_bytes() == b"net" * 50
    local.write_bytes(b"bit rot")
    assert cache.pull_ref(ref).read_bytes() == b"net" * 50


def test_names_and_paths_stay_inside_the_store(store: S3ArtifactStore) -> None:
    for bad_name in ("../x", "a/b", "", "x" * 200, "nul\x00"):
        with pytest.raises(ValueError):
            store.put_bytes("shard", b"x", name=bad_name)
    for bad_path in ("../shard/x", "/etc/passwd", "shard/../../x", ""):
        with pytest.raises(ValueError):
            store.read(bad_path, "0" * 64)
    with pytest.raises(ValueError, match="unknown artifact kind"):
        store.put_bytes("secrets", b"x")


class _Breaks(io.RawIOBase):
    """A source that fails partway, as a dying disk or a killed producer would."""

    def __init__(self, size: int, fail_at: int) -> None:
        self.left, self.fail_at, self.done = size, fail_at, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.done >= self.fail_at:
            raise OSError("source went away")
        n = min(len(b), self.left, self.fail_at - self.done)
        b[:n] = b"x" * n
        self.left -= n
        self.done += n
        return n


def test_a_partial_upload_is_never_visible(store: S3ArtifactStore, raw: Any) -> None:
    size = 20 * 1024 * 1024  # over the multipart threshold: uploaded in parts
    source = io.BufferedReader(_Breaks(size, fail_at=12 * 1024 * 1024))
    with pytest.raises(OSError, match="source went away"):
        store._put("checkpoint", source, "0" * 64, size, name="ckpt-partial", config=None)
    listed = raw.list_objects_v2(Bucket=BUCKET, Prefix=store.key_of("checkpoint"))
    assert listed.get("KeyCount", 0) == 0


# ----- training checkpoints between hosts that share no disk --------------------------------


def _host(name: str, tmp_path: Path, db_url: str, store: S3ArtifactStore, engine: Any) -> Any:
    from ringrift.infra.service import Service
    from ringrift.infra.settings import Settings
    from ringrift.store import session_factory

    data = tmp_path / name
    settings = Settings(
        data_dir=data,
        database_url=db_url,
        artifact_root=data / "artifacts",
        cache_root=data / "cache" / name,
        artifact_url=store.url,
    )
    return Service(
        settings, engine, session_factory(engine), store, LocalCache(settings.cache_root, store)
    )


def test_a_checkpoint_written_on_one_host_resumes_on_another(
    store: S3ArtifactStore, raw: Any, tmp_path: Path, redis_url: str
) -> None:
    import redis

    from ringrift.pipeline import runs
    from ringrift.pipeline.lease import Lease
    from ringrift.pipeline.quarantine import quarantine_rows
    from ringrift.pipeline.run_hooks import RunHooks
    from ringrift.store import make_engine, migrate
    from ringrift.store.models import Artifact, PipelineState, TrainingRun
    from training.checkpoint import checkpoint_path

    db_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        east = _host("east", tmp_path, db_url, store, engine)
        west = _host("west", tmp_path, db_url, store, engine)
        with east.session() as s:
            s.add(Artifact(id="d", kind="dataset", path="dataset/d", sha256="0" * 64, size=1))
            s.add(PipelineState(config="square8_2p"))
            s.flush()
            s.add(
                TrainingRun(
                    id="run-x",
                    config="square8_2p",
                    generation=0,
                    dataset_artifact_id="d",
                    total_steps=10,
                )
            )
        lease = Lease(redis.Redis.from_url(redis_url), "test-s3-run-x", 60)
        assert lease.acquire()
        with east.session() as s:
            assert runs.claim(s, "run-x", lease.token)

        # east trains and checkpoints step 5: recorded first, then copied to the store
        hooks = RunHooks(east, "run-x", 0, lease, "k", 60)
        assert hooks.checkpoint_dir == tmp_path / "east" / "runs" / "run-x"
        written = checkpoint_path(hooks.checkpoint_dir, 5)
        written.parent.mkdir(parents=True)
        written.write_bytes(b"optimiser and weights at step 5")
        digest = hashlib.sha256(written.read_bytes()).hexdigest()
        hooks.on_checkpoint(5, digest, written.stat().st_size)
        hooks.after_checkpoint(5, written)

        # west, with no folder in common, takes the next segment from that checkpoint
        west_hooks = RunHooks(west, "run-x", 1, lease, "k", 60)
        west_hooks.prepare()
        fetched = checkpoint_path(west_hooks.checkpoint_dir, 5)
        assert fetched.read_bytes() == written.read_bytes()
        west_hooks.verify(fetched)  # the ledger's record agrees

        # a copy damaged in the store is never resumed from: it is moved into the store's
        # quarantine with its record, and the segment starts from the checkpoint before it
        # (none here: from the start)
        fetched.unlink()
        key = store.key_of("runs/run-x/" + fetched.name)
        raw.put_object(Bucket=BUCKET, Key=key, Body=b"garbage", Metadata={"sha256": digest})
        west_hooks.prepare()
        assert not fetched.exists() and store.names_at("runs/run-x") == []
        with west.session() as s:
            [row] = quarantine_rows(s)
            assert runs.newest_checkpoint(s, "run-x") is None
        assert row["artifact_id"] == "run-x@5" and row["sha256"] == digest
        assert "ArtifactCorrupt" in row["reason"]
        assert b"".join(store.chunks(row["moved_to"])) == b"garbage"

        # the store keeps the newest copies only, as the working folder does
        west_hooks.keep_checkpoints = 2
        for step in (10, 15, 20):
            path = checkpoint_path(west_hooks.checkpoint_dir, step)
            path.write_bytes(f"state at step {step}".encode())
            west_hooks.after_checkpoint(step, path)
        assert store.names_at("runs/run-x") == ["ckpt_00000015.pt", "ckpt_00000020.pt"]
        # later steps left by an abandoned attempt go when an earlier step is written
        west_hooks.after_checkpoint(12, checkpoint_path(west_hooks.checkpoint_dir, 10))
        assert store.names_at("runs/run-x") == ["ckpt_00000012.pt"]
        lease.release()
    finally:
        engine.dispose()


def test_a_new_bucket_is_created_by_the_first_write(raw: Any) -> None:
    bucket = f"ringrift-new-{hashlib.sha256(str(id(raw)).encode()).hexdigest()[:8]}"
    store = S3ArtifactStore(f"s3://{bucket}/a", client=raw)
    ref = store.put_bytes("shard", b"first")
    assert store.read(ref) == b"first"
    assert S3ArtifactStore(f"s3://{bucket}/a", client=raw).put_bytes("shard", b"first") == ref

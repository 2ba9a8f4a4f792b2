"""The artifact store: checksummed files (shards, datasets, models, checkpoints) under one root.

Layout: ``<root>/<kind>/<id>``, where ``id`` is ``<kind>-<first 16 hex of sha256>`` unless the
producer names it. Every write goes to a temporary file in the target folder, is fsynced and then
renamed into place, so a reader sees a whole file or none. Every read checks the sha256 the ledger
recorded: a mismatch raises ``ArtifactCorrupt``, loudly, and the bytes are never used.

The root is a local folder on one machine or a mount every node reaches on a cluster. A worker
reads through its own ``LocalCache``, never through a path another worker wrote.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from ringrift.store.db import insert_ignoring_duplicates
from ringrift.store.models import ARTIFACT_KINDS, Artifact

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TMP_PREFIX = ".tmp-"


class ArtifactCorrupt(ValueError):
    """A file whose sha256 is not the one recorded for it.

    Built from the three facts, or (when an error is rebuilt from its message, as Celery and
    pickle do) from the message alone; either way the class and the message survive.
    """

    def __init__(
        self, path: str | os.PathLike[str], expected: str | None = None, actual: str | None = None
    ) -> None:
        if expected is None or actual is None:
            super().__init__(str(path))
            return
        self.path = Path(path)
        self.location = str(path)  # a file path, or an s3:// URL
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"artifact {self.location} is corrupt: expected sha256 {expected}, got {actual}"
        )


class ArtifactConflict(ValueError):
    """An artifact id that already names different contents (in the store or the ledger)."""


@dataclass(frozen=True)
class ArtifactRef:
    """What a message carries about an artifact: enough to find it and to check it."""

    id: str
    kind: str
    path: str  # relative to the store root, POSIX separators: "<kind>/<id>"
    sha256: str
    size: int
    config: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(**data)

    @classmethod
    def from_row(cls, row: Artifact) -> ArtifactRef:
        return cls(row.id, row.kind, row.path, row.sha256, row.size, row.config)


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return _sha256_stream(f)


def _sha256_stream(f: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := f.read(CHUNK_SIZE):
        h.update(chunk)
    return h.hexdigest()


def check_sha256(value: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"not a sha256 hex digest: {value!r}")
    return value


def check_kind(kind: str) -> str:
    if kind not in ARTIFACT_KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}; expected one of {ARTIFACT_KINDS}")
    return kind


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"artifact name {name!r} must match {_NAME.pattern}")
    return name


def relative_path(path: str | os.PathLike[str]) -> PurePosixPath:
    """A store-relative path that cannot leave the root."""
    rel = PurePosixPath(Path(path).as_posix())
    if rel.is_absolute() or not rel.parts or any(p in ("", ".", "..") for p in rel.parts):
        raise ValueError(f"artifact path must be relative and inside the store: {str(path)!r}")
    return rel


def expected_digest(
    ref_or_path: ArtifactRef | str | os.PathLike[str], expected_sha256: str | None
) -> str:
    """The sha256 a read must find: the ref's, or the one given with a bare path."""
    if isinstance(ref_or_path, ArtifactRef):
        if expected_sha256 is not None and expected_sha256 != ref_or_path.sha256:
            raise ValueError(
                f"expected sha256 {expected_sha256} disagrees with {ref_or_path.id}'s "
                f"{ref_or_path.sha256}"
            )
        expected_sha256 = ref_or_path.sha256
    elif expected_sha256 is None:
        raise ValueError(f"reading {str(ref_or_path)!r} needs the sha256 it should have")
    return check_sha256(expected_sha256)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(directory: Path, chunks: Iterable[bytes]) -> tuple[Path, str, int]:
    """Write ``chunks`` to a new fsynced temporary file in ``directory``.

    Returns its path, sha256 and size; the caller renames it into place or removes it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX, suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                h.update(chunk)
                size += len(chunk)
            f.flush()
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; other nodes and users read these
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, h.hexdigest(), size


def _commit(tmp: Path, final: Path) -> None:
    try:
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk


class ArtifactStore:
    """Checksummed files under ``root``; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    # --- writing ------------------------------------------------------------------------------

    def put_bytes(
        self, kind: str, data: bytes, *, name: str | None = None, config: str | None = None
    ) -> ArtifactRef:
        """Store ``data`` as a ``kind`` artifact; see ``put_file``."""
        return self._put(kind, [bytes(data)], name=name, config=config)

    def put_file(
        self,
        kind: str,
        src_path: str | os.PathLike[str],
        *,
        name: str | None = None,
        config: str | None = None,
    ) -> ArtifactRef:
        """Copy ``src_path`` into the store (streamed: memory stays flat for large files).

        The id is ``name`` if given, else ``<kind>-<first 16 hex of sha256>``. Storing the same
        contents again returns the same ref and leaves the file alone; a ``name`` that already
        holds different contents raises ``ArtifactConflict``, since a recorded artifact must never
        change under its id.
        """
        return self._put(kind, _read_chunks(Path(src_path)), name=name, config=config)

    def put_at(self, rel: str | os.PathLike[str], src_path: str | os.PathLike[str]) -> str:
        """Copy ``src_path`` to the store path ``rel`` (atomically); return its sha256. For files
        whose place the ledger records by path (training checkpoints)."""
        target = self.root / relative_path(rel)
        tmp, digest, _size = _write_atomic(target.parent, _read_chunks(Path(src_path)))
        _commit(tmp, target)
        return digest

    def names_at(self, folder: str | os.PathLike[str]) -> list[str]:
        """The names of the files directly in the store folder ``folder``."""
        directory = self.root / relative_path(folder)
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if p.is_file())

    def remove_at(self, rel: str | os.PathLike[str]) -> None:
        """Delete the file at the store path ``rel`` (gone already is fine)."""
        (self.root / relative_path(rel)).unlink(missing_ok=True)

    def move_at(self, rel: str | os.PathLike[str], to: str | os.PathLike[str]) -> bool:
        """Move the file at store path ``rel`` to store path ``to`` (one rename: readers see
        it at one place or the other); False when there was no file to move."""
        source, target = self.root / relative_path(rel), self.root / relative_path(to)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            return False
        _fsync_dir(source.parent)
        _fsync_dir(target.parent)
        return True

    def _put(
        self, kind: str, chunks: Iterable[bytes], *, name: str | None, config: str | None
    ) -> ArtifactRef:
        check_kind(kind)
        if name is not None:
            check_name(name)
        directory = self.root / kind
        tmp, digest, size = _write_atomic(directory, chunks)
        artifact_id = name if name is not None else f"{kind}-{digest[:16]}"
        final = directory / artifact_id
        ref = ArtifactRef(artifact_id, kind, f"{kind}/{artifact_id}", digest, size, config)
        if final.exists():
            existing = sha256_file(final)
            if existing == digest:
                tmp.unlink()
                return ref
            if name is not None:
                tmp.unlink()
                raise ArtifactConflict(
                    f"artifact {final} already holds sha256 {existing}; refusing to replace it "
                    f"with {digest}"
                )
            # A content-addressed file that does not hash to its own name is damaged: repair it.
            log.warning("replacing corrupt %s (sha256 %s) with %s", final, existing, digest)
        _commit(tmp, final)
        return ref

    # --- reading ------------------------------------------------------------------------------

    def chunks(self, rel: str | os.PathLike[str]) -> Iterator[bytes]:
        """The file's bytes (unverified: callers hash them)."""
        return _read_chunks(self.root / relative_path(rel))

    def location(self, rel: str | os.PathLike[str]) -> str:
        return str(self.root / relative_path(rel))

    def path_of(self, ref_or_path: ArtifactRef | str | os.PathLike[str]) -> Path:
        """The absolute path of an artifact; a bare path is taken relative to the root."""
        raw = ref_or_path.path if isinstance(ref_or_path, ArtifactRef) else ref_or_path
        if Path(raw).is_absolute():
            return Path(raw)
        return self.root / relative_path(raw)

    def _resolve(
        self, ref_or_path: ArtifactRef | str | os.PathLike[str], expected_sha256: str | None
    ) -> tuple[Path, str]:
        return self.path_of(ref_or_path), expected_digest(ref_or_path, expected_sha256)

    def open(
        self,
        ref_or_path: ArtifactRef | str | os.PathLike[str],
        expected_sha256: str | None = None,
    ) -> BinaryIO:
        """An open binary file, positioned at the start, whose contents were just verified.

        The hash is computed through the returned handle, so a file swapped in after the check
        is not what the caller reads. Raises ``ArtifactCorrupt`` on a mismatch.
        """
        path, expected = self._resolve(ref_or_path, expected_sha256)
        f = open(path, "rb")  # noqa: SIM115 - returned open: the caller closes it
        try:
            actual = _sha256_stream(f)
            if actual != expected:
                raise ArtifactCorrupt(path, expected, actual)
            f.seek(0)
        except BaseException:
            f.close()
            raise
        return f

    def read(
        self,
        ref_or_path: ArtifactRef | str | os.PathLike[str],
        expected_sha256: str | None = None,
    ) -> bytes:
        """The verified contents of an artifact; raises ``ArtifactCorrupt`` on a mismatch."""
        path, expected = self._resolve(ref_or_path, expected_sha256)
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ArtifactCorrupt(path, expected, actual)
        return data


class Store(Protocol):
    """What every artifact store offers: the folder one and the S3 one (``ringrift.store.s3``)."""

    def put_bytes(
        self, kind: str, data: bytes, *, name: str | None = None, config: str | None = None
    ) -> ArtifactRef: ...

    def put_file(
        self,
        kind: str,
        src_path: str | os.PathLike[str],
        *,
        name: str | None = None,
        config: str | None = None,
    ) -> ArtifactRef: ...

    def put_at(self, rel: str | os.PathLike[str], src_path: str | os.PathLike[str]) -> str: ...

    def names_at(self, folder: str | os.PathLike[str]) -> list[str]: ...

    def remove_at(self, rel: str | os.PathLike[str]) -> None: ...

    def move_at(self, rel: str | os.PathLike[str], to: str | os.PathLike[str]) -> bool: ...

    def chunks(self, rel: str | os.PathLike[str]) -> Iterator[bytes]: ...

    def location(self, rel: str | os.PathLike[str]) -> str: ...

    def open(
        self, ref_or_path: ArtifactRef | str | os.PathLike[str], expected_sha256: str | None = None
    ) -> BinaryIO: ...

    def read(
        self, ref_or_path: ArtifactRef | str | os.PathLike[str], expected_sha256: str | None = None
    ) -> bytes: ...


class LocalCache:
    """One worker's copies of store artifacts, under ``root`` with the store's layout.

    ``pull`` verifies the cached copy on every call: a copy that no longer hashes right is
    deleted and fetched again, never used. A store file that hashes wrong raises
    ``ArtifactCorrupt``: the task fails loudly and its retry tries again.
    Concurrent pulls of one artifact are safe: each writes its own temporary file and the
    rename is atomic.
    """

    def __init__(self, root: str | os.PathLike[str], store: Store) -> None:
        self.root = Path(root)
        self.store = store

    def __repr__(self) -> str:
        return f"LocalCache({str(self.root)!r}, {self.store!r})"

    def pull(self, artifact_id: str, path: str | os.PathLike[str], sha256: str) -> Path:
        """The local path of a verified copy of the artifact at store path ``path``."""
        rel = relative_path(path)
        check_sha256(sha256)
        target = self.root / rel
        if target.exists():
            cached = sha256_file(target)
            if cached == sha256:
                return target
            log.warning(
                "cached %s at %s has sha256 %s, expected %s; fetching it again",
                artifact_id,
                target,
                cached,
                sha256,
            )
            target.unlink(missing_ok=True)
        tmp, actual, _size = _write_atomic(target.parent, self.store.chunks(rel))
        if actual != sha256:
            tmp.unlink()
            raise ArtifactCorrupt(self.store.location(rel), sha256, actual)
        _commit(tmp, target)
        return target

    def pull_ref(self, ref: ArtifactRef) -> Path:
        return self.pull(ref.id, ref.path, ref.sha256)


def record_artifact(session: Session, ref: ArtifactRef, config: str | None = None) -> Artifact:
    """The ledger row for ``ref``, inserted if new (idempotent by id).

    An existing row with the same id but another kind, path, sha256 or size raises
    ``ArtifactConflict``. ``config`` defaults to ``ref.config``. The caller commits.
    """
    values = {
        "id": ref.id,
        "kind": check_kind(ref.kind),
        "path": str(relative_path(ref.path)),
        "sha256": check_sha256(ref.sha256),
        "size": ref.size,
        "config": config if config is not None else ref.config,
    }
    table = cast(Table, Artifact.__table__)
    session.execute(insert_ignoring_duplicates(session, table), [values])
    row = session.get(Artifact, ref.id, populate_existing=True)
    if row is None:  # pragma: no cover - the insert above or an earlier one made it
        raise RuntimeError(f"artifact {ref.id} vanished after insert")
    recorded = (row.kind, row.path, row.sha256, row.size)
    if recorded != (values["kind"], values["path"], values["sha256"], values["size"]):
        wanted = (ref.kind, ref.path, ref.sha256, ref.size)
        raise ArtifactConflict(f"artifact {ref.id} is recorded as {recorded}, not {wanted}")
    return row


__all__ = [
    "ArtifactConflict",
    "ArtifactCorrupt",
    "ArtifactRef",
    "ArtifactStore",
    "LocalCache",
    "Store",
    "record_artifact",
    "sha256_file",
]

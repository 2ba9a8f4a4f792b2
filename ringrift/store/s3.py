"""The artifact store on an S3-compatible object store (``s3://bucket/prefix``).

The same contract as the folder store (``ringrift.store.artifacts``), for clusters whose hosts
share no disk: objects live at ``<prefix>/<kind>/<id>`` and carry their sha256 in the object's
metadata. An object becomes visible only when its upload completes (S3 semantics, multipart
included), so a reader never sees part of one. Every read hashes the bytes as they arrive and
raises ``ArtifactCorrupt`` on a mismatch; a content-addressed object that no longer hashes to its
name is replaced, a named one that holds other contents is never overwritten
(``ArtifactConflict``).

The endpoint comes from ``RINGRIFT_S3_ENDPOINT`` (else boto3's own ``AWS_ENDPOINT_URL``, else
AWS), credentials and region from the usual ``AWS_*`` variables.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import urlparse

from ringrift.store.artifacts import (
    CHUNK_SIZE,
    ArtifactConflict,
    ArtifactCorrupt,
    ArtifactRef,
    check_kind,
    check_name,
    expected_digest,
    relative_path,
    sha256_file,
)

log = logging.getLogger(__name__)

SHA_KEY = "sha256"  # object metadata key (sent as x-amz-meta-sha256)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at either end)."""
    parts = urlparse(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    prefix = parts.path.strip("/")
    if any(p in ("", ".", "..") for p in prefix.split("/")) and prefix:
        raise ValueError(f"the prefix of {url!r} must be plain path segments")
    return parts.netloc, prefix


def s3_client(endpoint: str | None = None) -> Any:
    """A boto3 S3 client for ``endpoint`` (default: ``RINGRIFT_S3_ENDPOINT``, then boto3's own
    configuration)."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint or os.environ.get("RINGRIFT_S3_ENDPOINT") or None
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        # path-style addressing works on every S3-compatible server, virtual hosts do not
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def _missing(error: Any) -> bool:
    """Whether an S3 error says the object or bucket does not exist."""
    code = error.response.get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound")


class _HashingReader:
    """A read-only file wrapper that hashes what passes through it."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data


class S3ArtifactStore:
    """Checksummed objects under ``s3://bucket/prefix``; see the module docstring."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.client = client if client is not None else s3_client()
        self._bucket_checked = False

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.url!r})"

    def _ensure_bucket(self) -> None:
        """Before the first write: create the bucket if it does not exist yet, so a new store
        needs nothing run first."""
        if self._bucket_checked:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            if not _missing(e):
                raise
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as again:  # another worker made it first
                code = again.response.get("Error", {}).get("Code")
                if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_checked = True

    def key_of(self, rel: str | os.PathLike[str]) -> str:
        path = relative_path(rel)
        return f"{self.prefix}/{path}" if self.prefix else str(path)

    # --- writing ------------------------------------------------------------------------------

    def put_bytes(
        self, kind: str, data: bytes, *, name: str | None = None, config: str | None = None
    ) -> ArtifactRef:
        digest = hashlib.sha256(bytes(data)).hexdigest()
        return self._put(kind, io.BytesIO(bytes(data)), digest, len(data), name=name, config=config)

    def put_file(
        self,
        kind: str,
        src_path: str | os.PathLike[str],
        *,
        name: str | None = None,
        config: str | None = None,
    ) -> ArtifactRef:
        """Upload ``src_path`` (streamed; large files go up in parts). Same ids, idempotence and
        conflicts as ``ArtifactStore.put_file``."""
        digest = sha256_file(src_path)
        size = Path(src_path).stat().st_size
        with open(src_path, "rb") as f:
            return self._put(kind, f, digest, size, name=name, config=config)

    def put_at(self, rel: str | os.PathLike[str], src_path: str | os.PathLike[str]) -> str:
        """Upload ``src_path`` to the store path ``rel``; return its sha256. For files whose
        place the ledger records by path (training checkpoints)."""
        digest = sha256_file(src_path)
        self._ensure_bucket()
        with open(src_path, "rb") as f:
            self._upload_verified(f, self.key_of(rel), digest, Path(src_path).stat().st_size)
        return digest

    def names_at(self, folder: str | os.PathLike[str]) -> list[str]:
        """The names of the objects directly under the store folder ``folder``."""
        from botocore.exceptions import ClientError

        prefix = self.key_of(folder) + "/"
        names = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        )
        try:
            for page in pages:
                # a store that keeps folders as objects lists the folder itself: no name
                names += [
                    name
                    for o in page.get("Contents", [])
                    if (name := o["Key"].removeprefix(prefix))
                ]
        except ClientError as e:
            if _missing(e):
                return []
            raise
        return sorted(names)

    def remove_at(self, rel: str | os.PathLike[str]) -> None:
        """Delete the object at the store path ``rel`` (gone already is fine)."""
        self.client.delete_object(Bucket=self.bucket, Key=self.key_of(rel))

    def move_at(self, rel: str | os.PathLike[str], to: str | os.PathLike[str]) -> bool:
        """Copy the object at ``rel`` to ``to`` (its metadata with it), then delete the first;
        False when there was no object to move."""
        from botocore.exceptions import ClientError

        source = {"Bucket": self.bucket, "Key": self.key_of(rel)}
        try:
            self.client.copy(source, self.bucket, self.key_of(to))
        except ClientError as e:
            if _missing(e):
                return False
            raise
        self.client.delete_object(**source)
        return True

    def _upload_verified(self, f: BinaryIO, key: str, digest: str, size: int) -> None:
        """Upload ``f`` under ``key`` with its sha256 in the metadata; if the bytes sent are not
        the ones hashed (the source changed meanwhile), take the object back and raise."""
        reader = _HashingReader(f)
        self.client.upload_fileobj(
            reader, self.bucket, key, ExtraArgs={"Metadata": {SHA_KEY: digest}}
        )
        if reader.hash.hexdigest() != digest or reader.size != size:
            self.client.delete_object(Bucket=self.bucket, Key=key)
            raise ArtifactCorrupt(f"s3://{self.bucket}/{key}", digest, reader.hash.hexdigest())

    def _put(
        self,
        kind: str,
        f: BinaryIO,
        digest: str,
        size: int,
        *,
        name: str | None,
        config: str | None,
    ) -> ArtifactRef:
        check_kind(kind)
        if name is not None:
            check_name(name)
        artifact_id = name if name is not None else f"{kind}-{digest[:16]}"
        rel = f"{kind}/{artifact_id}"
        key = self.key_of(rel)
        ref = ArtifactRef(artifact_id, kind, rel, digest, size, config)
        self._ensure_bucket()
        existing = self._stored_sha256(key)
        if existing == digest:
            # The metadata agrees; the bytes must too (an object can be damaged under it).
            existing = self._actual_sha256(key)
            if existing == digest:
                return ref
        if existing is not None:
            if name is not None:
                raise ArtifactConflict(
                    f"artifact s3://{self.bucket}/{key} already holds sha256 {existing}; "
                    f"refusing to replace it with {digest}"
                )
            log.warning("replacing corrupt s3://%s/%s (sha256 %s)", self.bucket, key, existing)
        self._upload_verified(f, key, digest, size)
        return ref

    def _stored_sha256(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _missing(e):
                return None
            raise
        stored = head.get("Metadata", {}).get(SHA_KEY)
        return str(stored) if stored else "unrecorded"

    def _actual_sha256(self, key: str) -> str:
        h = hashlib.sha256()
        for chunk in self._object_chunks(key):
            h.update(chunk)
        return h.hexdigest()

    def _object_chunks(self, key: str) -> Iterator[bytes]:
        """The object's bytes; ``FileNotFoundError`` when there is no such object, as the
        folder store raises."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as e:
            if _missing(e):
                raise FileNotFoundError(f"s3://{self.bucket}/{key}: no such object") from None
            raise
        try:
            yield from body.iter_chunks(CHUNK_SIZE)
        finally:
            body.close()

    # --- reading ------------------------------------------------------------------------------

    def chunks(self, rel: str | os.PathLike[str]) -> Iterator[bytes]:
        """The object's bytes as they arrive (unverified: callers hash them)."""
        return self._object_chunks(self.key_of(rel))

    def location(self, rel: str | os.PathLike[str]) -> str:
        return f"s3://{self.bucket}/{self.key_of(rel)}"

    def _resolve(
        self, ref_or_path: ArtifactRef | str | os.PathLike[str], expected_sha256: str | None
    ) -> tuple[PurePosixPath, str]:
        raw = ref_or_path.path if isinstance(ref_or_path, ArtifactRef) else ref_or_path
        return relative_path(raw), expected_digest(ref_or_path, expected_sha256)

    def open(
        self,
        ref_or_path: ArtifactRef | str | os.PathLike[str],
        expected_sha256: str | None = None,
    ) -> BinaryIO:
        """A local, verified copy of the object, open at its start (the caller closes it)."""
        rel, expected = self._resolve(ref_or_path, expected_sha256)
        f = tempfile.TemporaryFile()  # noqa: SIM115 - returned open: the caller closes it
        try:
            h = hashlib.sha256()
            for chunk in self.chunks(rel):
                h.update(chunk)
                f.write(chunk)
            if h.hexdigest() != expected:
                raise ArtifactCorrupt(self.location(rel), expected, h.hexdigest())
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
        with self.open(ref_or_path, expected_sha256) as f:
            return f.read()


__all__ = ["S3ArtifactStore", "parse_s3_url", "s3_client"]

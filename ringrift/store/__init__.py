"""The ledger (SQL, the source of truth) and the artifact store (checksummed files).

``models`` holds the tables, ``db`` connections, migrations and the race-safe writes,
``artifacts`` the folder store and each worker's verified cache, ``s3`` the same store on an
S3-compatible object store.
"""

from ringrift.store.artifacts import (
    ArtifactConflict,
    ArtifactCorrupt,
    ArtifactRef,
    ArtifactStore,
    LocalCache,
    Store,
    record_artifact,
)
from ringrift.store.db import (
    cas_best_model,
    database_url,
    ensure_schema,
    ingest_games,
    make_engine,
    migrate,
    session_factory,
)

__all__ = [
    "ArtifactConflict",
    "ArtifactCorrupt",
    "ArtifactRef",
    "ArtifactStore",
    "LocalCache",
    "Store",
    "cas_best_model",
    "database_url",
    "ensure_schema",
    "ingest_games",
    "make_engine",
    "migrate",
    "record_artifact",
    "session_factory",
]

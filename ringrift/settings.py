"""Where the service keeps its state, read from the environment once per process.

``RINGRIFT_DATA_DIR`` (default ``~/.ringrift``) holds the SQLite ledger (unless
``RINGRIFT_DATABASE_URL`` points elsewhere), the artifact store and each worker's local cache.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ringrift.store.db import database_url


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    artifact_root: Path
    cache_root: Path

    @classmethod
    def from_env(cls) -> Settings:
        import celeryconfig

        default = celeryconfig.ringrift_data_dir_default
        data_dir = Path(os.environ.get("RINGRIFT_DATA_DIR", default)).expanduser().absolute()
        worker = os.environ.get("RINGRIFT_CACHE_NAME") or socket.gethostname()
        return cls(
            data_dir=data_dir,
            database_url=database_url(data_dir),
            artifact_root=data_dir / "artifacts",
            cache_root=data_dir / "cache" / worker,
        )

"""Where the service keeps its state, read from the environment once per process.

``RINGRIFT_DATA_DIR`` (default ``~/.ringrift``) holds the SQLite ledger (unless
``RINGRIFT_DATABASE_URL`` points elsewhere), the artifact store (unless ``RINGRIFT_ARTIFACT_URL``
names another folder or an ``s3://bucket/prefix``; see ``ringrift.store.s3``) and each worker's
local cache and training working copies.

Training runs in segments of ``RINGRIFT_TRAIN_SEGMENT_SECONDS`` (default 1800) under a lease of
``RINGRIFT_TRAIN_LEASE_SECONDS`` (default 120) that the worker renews as it goes; a worker that
dies lets the lease lapse, and the run is taken up again after about three lease periods.
``RINGRIFT_TRAIN_RANKS`` (default 1) above 1 trains each segment with DDP on that many
processes under torchrun: the worker's GPU and the ones after it (``ringrift.tasks.ddp_train``).

A selfplay or evaluation task keeps a heartbeat in Redis while it works; one silent for
``RINGRIFT_TASK_HEARTBEAT_SECONDS`` (default 60) lost its worker and is sent again at once
(``ringrift.pipeline.heartbeat``).
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
    artifact_root: Path  # the folder store; unused when artifact_url is an s3:// URL
    cache_root: Path
    artifact_url: str = ""  # "" or a folder: the folder store at artifact_root
    host: str = ""  # this host's name for its cache (RINGRIFT_CACHE_NAME, else the hostname)
    train_lease_seconds: int = 120
    train_segment_seconds: int = 1800
    train_ranks: int = 1  # >1: each training segment runs as DDP on this many processes
    task_heartbeat_seconds: int = 60  # a group member silent this long lost its worker
    max_trainings: int = 0  # trainings at once over all configurations (0: one per GPU queue)
    eval_share: float = 0.5  # the share of GPU queues evaluations may hold at once

    @classmethod
    def from_env(cls) -> Settings:
        import celeryconfig

        default = celeryconfig.ringrift_data_dir_default
        data_dir = Path(os.environ.get("RINGRIFT_DATA_DIR", default)).expanduser().absolute()
        worker = os.environ.get("RINGRIFT_CACHE_NAME") or socket.gethostname()
        url = os.environ.get("RINGRIFT_ARTIFACT_URL", "").strip()
        root = data_dir / "artifacts"
        if url.startswith("file://"):
            url = url.removeprefix("file://")
        if url and not url.startswith("s3://"):
            if "://" in url:
                raise ValueError(
                    f"RINGRIFT_ARTIFACT_URL must be a folder or s3://bucket/prefix, got {url!r}"
                )
            root, url = Path(url).expanduser().absolute(), ""
        return cls(
            data_dir=data_dir,
            database_url=database_url(data_dir),
            artifact_root=root,
            cache_root=data_dir / "cache" / worker,
            artifact_url=url,
            host=worker,
            train_lease_seconds=_env_positive("RINGRIFT_TRAIN_LEASE_SECONDS", 120),
            train_segment_seconds=_env_positive("RINGRIFT_TRAIN_SEGMENT_SECONDS", 1800),
            train_ranks=_env_positive("RINGRIFT_TRAIN_RANKS", 1),
            task_heartbeat_seconds=_env_positive("RINGRIFT_TASK_HEARTBEAT_SECONDS", 60),
            max_trainings=_env_positive("RINGRIFT_MAX_TRAININGS", 0),  # unset: 0, no number
            eval_share=_env_share("RINGRIFT_EVAL_SHARE", 0.5),
        )


def _env_share(name: str, default: float) -> float:
    """A share between 0 (excluded) and 1 from the environment."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be above 0 and at most 1, got {value}")
    return value


def _env_positive(name: str, default: int) -> int:
    """A positive whole number from the environment (seconds, or a count)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value

"""The training loop's callbacks for one segment of a ledger run, under its fenced lease.

Shared by the training task (one process) and the torchrun entry point
(``ringrift.tasks.ddp_train``, rank 0 of several): both must renew the lease, keep the stage claim
alive, write progress and checkpoint records only under their own token, trust only recorded
checkpoints, and see a cancel request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringrift.infra.service import Service, redis_client
from ringrift.pipeline import runs
from ringrift.pipeline.lease import Lease
from ringrift.pipeline.quarantine import confirmed, set_aside
from ringrift.pipeline.state import hold
from ringrift.store import ArtifactCorrupt, ArtifactStore, LocalCache
from ringrift.store.models import Checkpoint, TrainingRun
from training.checkpoint import CHECKPOINT_NAME, checkpoint_path

CANCELLED = "cancelled"  # training.loop.CANCELLED, without importing torch here


@dataclass
class RunHooks:
    svc: Service
    run_id: str
    segment: int
    lease: Lease
    stage_key: str  # the pipeline claim this run keeps alive while it trains
    claim_seconds: int
    publish: Callable[[dict[str, Any]], None] | None = None  # the task's PROGRESS state
    keep_checkpoints: int = 3  # the run's TrainConfig.keep_checkpoints: copies the store keeps
    stop_asked: bool = False

    @property
    def checkpoint_dir(self) -> Path:
        return self.svc.working_dir("runs", self.run_id)

    @property
    def _remote(self) -> bool:
        return not isinstance(self.svc.store, ArtifactStore)

    def _store_path(self, step: int) -> str:
        return f"runs/{self.run_id}/{checkpoint_path(self.checkpoint_dir, step).name}"

    def prepare(self) -> None:
        """Before a segment on a host that shares no disk with the last one: fetch the run's
        newest recorded checkpoint from the store into the working folder, verified."""
        if not self._remote:
            return
        cache = LocalCache(self.svc.settings.data_dir, self.svc.store)
        while True:
            with self.svc.session() as s:
                newest = runs.newest_checkpoint(s, self.run_id)
            if newest is None:
                return
            try:
                cache.pull(f"{self.run_id}@{newest.step}", newest.path, newest.sha256)
                return
            except (ArtifactCorrupt, FileNotFoundError) as e:
                if not confirmed(self.svc.store, newest.path, newest.sha256, e):
                    raise
                self.set_aside(cache.root / newest.path, newest.step, f"{type(e).__name__}: {e}")

    def keep_claim(self) -> None:
        hold(redis_client(), self.stage_key, self.claim_seconds)

    def guard(self) -> None:
        """May this process still write? Raises ``LeaseLost`` when it may not."""
        self.lease.renew()

    def progress(self, step: int, total: int, losses: dict[str, float]) -> None:
        self.lease.renew()
        self.keep_claim()
        with self.svc.session() as s:
            self.stop_asked = runs.report(s, self.run_id, self.lease.token, step, total, losses)
        if self.publish is not None:
            self.publish(
                {
                    "run_id": self.run_id,
                    "segment": self.segment,
                    "step": step,
                    "total": total,
                    "loss": float(losses["total"]),
                    **losses,
                }
            )

    def should_stop(self) -> str | None:
        return CANCELLED if self.stop_asked else None

    def on_checkpoint(self, step: int, sha256: str, size: int) -> None:
        with self.svc.session() as s:
            runs.record_checkpoint(
                s, self.run_id, self.lease.token, step, self._store_path(step), sha256, size
            )

    def after_checkpoint(self, step: int, path: Path) -> None:
        """A remote store gets a copy of each checkpoint once it is written (the folder store
        holds it already): a segment on another host resumes from it."""
        if self._remote:
            self.lease.renew()
            self.svc.store.put_at(self._store_path(step), path)
            self._prune_remote(step)

    def _prune_remote(self, step: int) -> None:
        """Keep the remote copies as the working folder keeps its files: the newest
        ``keep_checkpoints`` up to ``step``, none after it (from an abandoned attempt)."""
        folder = f"runs/{self.run_id}"
        steps = sorted(
            int(m.group(1))
            for name in self.svc.store.names_at(folder)
            if (m := CHECKPOINT_NAME.fullmatch(name))
        )
        kept = [s for s in steps if s <= step][-self.keep_checkpoints :]
        for s in steps:
            if s not in kept:
                self.svc.store.remove_at(f"{folder}/{checkpoint_path(self.checkpoint_dir, s).name}")

    def verify(self, path: Path) -> None:
        with self.svc.session() as s:
            runs.verify_checkpoint(s, self.run_id, path, int(path.stem.split("_")[1]))

    def set_aside(self, path: Path, step: int, reason: str) -> None:
        """A checkpoint that failed its check on resume: moved from the run's folder into the
        store's quarantine, its record with it, and the reason kept; the run resumes from the
        one before it and trains that interval again."""
        with self.svc.session() as s:
            recorded = s.get(Checkpoint, (self.run_id, step))
            run = s.get(TrainingRun, self.run_id)
            set_aside(
                self.svc,
                s,
                artifact_id=f"{self.run_id}@{step}",
                kind="checkpoint",
                config=run.config if run is not None else None,
                path=self._store_path(step),
                sha256=recorded.sha256 if recorded is not None else None,
                reason=reason,
                found_by=f"train {self.run_id} on {self.svc.settings.host}",
                outcome="training resumes from the checkpoint before it, training again the "
                "steps since",
            )
            if recorded is not None:
                s.delete(recorded)
        path.unlink(missing_ok=True)  # a remote store's working copy (a folder store's moved)

    def loop_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``training.loop.train`` these hooks provide."""
        return {
            "checkpoint_dir": self.checkpoint_dir,
            "progress": self.progress,
            "guard": self.guard,
            "should_stop": self.should_stop,
            "on_checkpoint": self.on_checkpoint,
            "after_checkpoint": self.after_checkpoint,
            "verify_checkpoint": self.verify,
            "set_aside_checkpoint": self.set_aside,
        }

"""Corrupt and foreign files: moved aside, recorded, and replaced from their source.

A file that fails its checksum (truncated, bit-flipped, swapped for another) or its structure
check (a shard whose games do not replay, a dataset whose arrays disagree) is never used, and is
not left where the next reader would trip on it again: it moves to ``quarantine/<kind>/`` in the
store, and a ``quarantine`` row in the ledger records what it was, where it went, why, who found
it and what replaced it. Where it came from decides what replaces it:

- a shard not yet collected: its ledger row is dropped, so its games count as never played and
  selfplay plays that many again (the scheduler counts only games in the ledger);
- a collected shard: written again from its games in the ledger, kept only if it hashes to the
  sha256 the ledger recorded;
- a dataset: exported again from the same window of games in the ledger (the ones there when it
  was first exported); the same games give the same bytes, so the rebuild is checked against
  the recorded sha256 too;
- a training checkpoint: the run resumes from the checkpoint before it and trains that
  interval again (``RunHooks``);
- a model: written again from its training run's final checkpoint (``pipeline.model_rebuild``)
  and kept only if it hashes to the recorded sha256; where that cannot be done (the
  checkpoint is gone, another device's arithmetic) the row says so, and every task that needs
  the model fails with that message until a person restores the file.

``verified`` is the one way a task reads an artifact: pull, check, and on a bad file set it
aside, replace it, and check the replacement.

A checksum mismatch is read twice before anything moves, straight from the store the second
time: a transfer that went wrong once is an error to retry, not a corrupt file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ringrift.ai.dataset import DatasetError
from ringrift.ai.selfplay import ShardError, ShardHeader, write_shard_json
from ringrift.errors import ServiceError, bounded
from ringrift.game import GameConfig
from ringrift.infra.service import Service
from ringrift.pipeline.ledger_games import export_window
from ringrift.store.artifacts import ArtifactCorrupt, Store, relative_path, sha256_file
from ringrift.store.models import Artifact, Game, Model, QuarantinedArtifact, utcnow

log = logging.getLogger(__name__)

FOLDER = "quarantine"
# What says a file is bad, as opposed to a store or network that failed to deliver it:
# a checksum that does not match, a structure that does not hold, or no file at all.
BAD_FILE = (ArtifactCorrupt, ShardError, DatasetError, FileNotFoundError)
BEING_REPLACED = "being replaced from its source"  # until the attempt's outcome is recorded
NOT_REPLACED = (
    "the model cannot be played until the file is restored (from the quarantine folder or a "
    "backup) or another model is promoted"
)

T = TypeVar("T")


class SetAside(ServiceError):
    """An artifact proved bad, was set aside, and could not be replaced: ``reason`` says what
    was wrong with it, ``outcome`` why nothing replaced it."""

    def __init__(self, artifact_id: str, kind: str, reason: str, outcome: str) -> None:
        super().__init__(f"{kind} {artifact_id} was set aside ({reason}); {outcome}")
        self.artifact_id, self.kind, self.reason, self.outcome = artifact_id, kind, reason, outcome


def store_digest(store: Store, rel: str) -> str | None:
    """The sha256 of the file at store path ``rel`` as the store holds it; None if missing."""
    h = hashlib.sha256()
    try:
        for chunk in store.chunks(rel):
            h.update(chunk)
    except FileNotFoundError:
        return None
    return h.hexdigest()


def confirmed(store: Store, rel: str, sha256: str, error: Exception) -> bool:
    """Whether ``error`` really says the stored file is bad: a checksum mismatch must show
    again on a second read from the store itself (a structure error or a missing file is
    not a matter of transfer)."""
    if isinstance(error, ArtifactCorrupt):
        return store_digest(store, rel) != sha256
    return True


def set_aside(
    svc: Service,
    s: Session,
    *,
    artifact_id: str,
    kind: str,
    config: str | None,
    path: str,
    sha256: str | None,
    reason: str,
    found_by: str,
    outcome: str,
) -> QuarantinedArtifact:
    """Move the file at store path ``path`` under ``quarantine/<kind>/`` (with the time in its
    name, so two finds never collide) and record it; the caller commits and may amend the
    row's ``outcome`` once it has tried to replace the file."""
    name = PurePosixPath(path).name
    target = f"{FOLDER}/{kind}/{name}.{utcnow().strftime('%Y%m%dT%H%M%S%fZ')}"
    moved = svc.store.move_at(path, target)
    (svc.cache.root / relative_path(path)).unlink(missing_ok=True)  # this worker's copy
    row = QuarantinedArtifact(
        artifact_id=artifact_id,
        kind=kind,
        config=config,
        path=path,
        moved_to=target if moved else None,
        sha256=sha256,
        reason=bounded(reason),
        found_by=found_by[:128],
        outcome=outcome,
    )
    s.add(row)
    s.flush()
    log.error(
        "%s %s is unusable (%s); %s; %s",
        kind,
        artifact_id,
        row.reason,
        f"moved to {target}" if moved else "there was no file to move",
        outcome,
    )
    return row


def set_aside_artifact(
    svc: Service, s: Session, artifact: Artifact, error: Exception, found_by: str
) -> QuarantinedArtifact:
    """Set aside a ledger artifact that ``error`` showed bad, and replace it from its source
    where it has one (see the module doc). The record is committed as soon as the file has
    moved (with the caller's session: whatever else it holds goes with it), so that a failed
    rebuild leaves it in place; the caller commits the outcome."""
    earlier = _latest_row(s, artifact.id, artifact.sha256)
    if earlier is not None and earlier.outcome == BEING_REPLACED:
        # set aside already (its file moved), and its replacement cut short by its worker's
        # death or still under way in another worker that found the same bad bytes at the same
        # time: replace it now, under the same record (a rebuild gives the same bytes)
        log.warning("%s %s: replacing it again (set aside before)", artifact.kind, artifact.id)
    elif (
        isinstance(error, FileNotFoundError)
        and earlier is not None
        and not earlier.outcome.startswith("rebuilt")
    ):
        return earlier  # already set aside, and not replaced: nothing new to record
    else:
        earlier = None
    row = earlier or set_aside(
        svc,
        s,
        artifact_id=artifact.id,
        kind=artifact.kind,
        config=artifact.config,
        path=artifact.path,
        sha256=artifact.sha256,
        reason=f"{type(error).__name__}: {error}",
        found_by=found_by,
        outcome=BEING_REPLACED,
    )
    row_id, kind, artifact_id = row.id, artifact.kind, artifact.id
    s.commit()
    if kind == "shard":
        outcome = _replace_shard(svc, s, artifact)
    elif kind == "dataset":
        outcome = _replace_dataset(svc, s, artifact)
    elif kind == "model":
        outcome = _replace_model(svc, s, artifact, found_by)
    else:
        outcome = "not replaced: nothing records how to make it again"
    row = s.get(QuarantinedArtifact, row_id) or row  # an export streams and lets rows go
    row.outcome = outcome
    s.flush()
    log.warning("%s %s: %s", kind, artifact_id, outcome)
    return row


def _replace_shard(svc: Service, s: Session, artifact: Artifact) -> str:
    games = list(
        s.scalars(select(Game).where(Game.shard_artifact_id == artifact.id).order_by(Game.id))
    )
    if not games:
        s.execute(delete(Artifact).where(Artifact.id == artifact.id))
        return (
            "its ledger row is dropped: none of its games were collected, so selfplay plays "
            "them again"
        )
    first = games[0]
    header = ShardHeader(str(artifact.config), first.generation, first.model_id, len(games))
    rows = [_shard_json(g) for g in games]
    return _restore(
        svc,
        artifact,
        lambda path: write_shard_json(path, header, rows),
        f"its {len(games)} games in the ledger",
    )


def _shard_json(g: Game) -> dict[str, Any]:
    """A ledger game in the form its shard line had (``PlayedGame.to_json``'s keys, in order)."""
    out: dict[str, Any] = {
        "id": g.id,
        "config": g.config,
        "seed": g.seed,
        "record": json.loads(g.record),
        "winner": g.winner,
        "ranks": list(g.ranking),
        "termination": g.termination,
        "length": g.length,
        "targets": json.loads(g.targets),
    }
    if g.search is not None:
        out["search"] = json.loads(g.search)
    return out


def _replace_dataset(svc: Service, s: Session, artifact: Artifact) -> str:
    from ringrift.pipeline.presets import preset
    from ringrift.pipeline.state import dataset_generation
    from ringrift.store.models import PipelineState

    config = str(artifact.config)
    try:
        generation = dataset_generation(artifact.id)
    except ValueError as e:
        return f"not rebuilt: {e}"
    st = s.get(PipelineState, config)
    window = preset(st.preset if st is not None else "default", config).window_games
    cfg = GameConfig.parse(config)
    before = artifact.created_at
    return _restore(
        svc,
        artifact,
        lambda path: export_window(s, cfg, generation, window, path, before),
        f"the window of up to {window} games of generation {generation} or earlier in the ledger",
    )


def _replace_model(svc: Service, s: Session, artifact: Artifact, found_by: str) -> str:
    from ringrift.pipeline.model_rebuild import final_checkpoint_of, write_model_again

    model = s.scalars(select(Model).where(Model.artifact_id == artifact.id)).first()
    if model is None:
        return f"not replaced: no model is recorded with these weights; {NOT_REPLACED}"
    try:
        final = final_checkpoint_of(s, model)
        dataset = usable_dataset(svc, final.run.dataset_artifact_id, found_by)
    except ValueError as e:
        return f"not replaced: {e}; {NOT_REPLACED}"
    outcome = _restore(
        svc,
        artifact,
        lambda path: write_model_again(svc, model, final, dataset, path),
        f"{final.run.id}'s final checkpoint (step {final.step})",
    )
    return outcome if outcome.startswith("rebuilt") else f"{outcome}; {NOT_REPLACED}"


def _restore(svc: Service, artifact: Artifact, write: Callable[[Path], object], source: str) -> str:
    """Write the artifact again with ``write(path)``; store it under its id only if it hashes
    to the recorded sha256 (a recorded artifact never changes under its id)."""
    with tempfile.TemporaryDirectory(dir=svc.settings.data_dir) as tmp:
        path = Path(tmp) / artifact.id
        try:
            write(path)
        except ValueError as e:  # nothing to build it from (no games left, say)
            return f"not rebuilt: {source} gave no file ({e})"
        digest = sha256_file(path)
        if digest != artifact.sha256:
            return f"not rebuilt: {source} gave sha256 {digest}, not the recorded {artifact.sha256}"
        svc.store.put_file(artifact.kind, path, name=artifact.id, config=artifact.config)
    return f"rebuilt from {source} (sha256 checked)"


def verified(
    svc: Service, s: Session, artifact: Artifact, found_by: str, read: Callable[[Path], T]
) -> T:
    """``read`` of a verified local copy of ``artifact``: its checksum holds, and ``read``
    (a structure check) returns rather than raise one of ``BAD_FILE``.

    A file that proves bad is set aside and replaced from its source (``set_aside_artifact``;
    ``s`` is committed with the record), and the replacement is read the same way;
    ``SetAside`` when nothing replaced it. A checksum error that a second read from the store
    does not confirm is raised as it is: the transfer failed; a retry reads the file again."""
    # plain values: a rebuild may let the session's objects go (an export streams its games)
    artifact_id, kind, path, sha256 = artifact.id, artifact.kind, artifact.path, artifact.sha256
    for attempt in (1, 2):
        try:
            return read(svc.cache.pull(artifact_id, path, sha256))
        except BAD_FILE as e:
            if attempt == 2 or not confirmed(svc.store, path, sha256, e):
                raise
            row = set_aside_artifact(svc, s, artifact, e, found_by)
            reason, outcome = row.reason, row.outcome
            s.commit()  # the outcome stays recorded whatever the caller does next
            if not outcome.startswith("rebuilt"):
                raise SetAside(artifact_id, kind, reason, outcome) from None
    raise AssertionError("unreachable: the second attempt returns or raises")


def usable_dataset(svc: Service, artifact_id: str, found_by: str) -> Path:
    """A verified local copy of dataset ``artifact_id``: its checksum and its structure hold.

    A dataset that proves bad is set aside and exported again from its games; one that cannot
    be rebuilt raises ``DatasetError`` saying why (a ``ValueError``: retrying will not help)."""
    from ringrift.ai.dataset import load_dataset
    from ringrift.ai.encoding import ENCODER_VERSION

    with svc.session() as s:
        artifact = s.get(Artifact, artifact_id)
        if artifact is None:
            raise ServiceError(f"dataset {artifact_id} is not in the ledger")
        board = GameConfig.parse(str(artifact.config)).board

        def read(path: Path) -> Path:
            load_dataset(path, expect_encoder_version=ENCODER_VERSION, expect_board=board)
            return path

        try:
            return verified(svc, s, artifact, found_by, read)
        except SetAside as e:
            raise DatasetError(str(e)) from None


def scrub(svc: Service, found_by: str) -> dict[str, Any]:
    """Read every artifact the ledger records straight from the store (no worker cache in
    between) against its sha256; set aside each one that fails, replacing it from its source
    where it has one. What a person runs after a disk or a bucket misbehaved."""
    with svc.session() as s:
        ids = list(s.scalars(select(Artifact.id).order_by(Artifact.id)))
    checked, set_aside_rows = 0, []
    for artifact_id in ids:
        with svc.session() as s:
            artifact = s.get(Artifact, artifact_id)
            if artifact is None:  # set aside meanwhile (a collect found it first)
                continue
            checked += 1
            digest = store_digest(svc.store, artifact.path)
            if digest == artifact.sha256:
                continue
            error: Exception = (
                FileNotFoundError(f"{svc.store.location(artifact.path)}: no such file")
                if digest is None
                else ArtifactCorrupt(svc.store.location(artifact.path), artifact.sha256, digest)
            )
            row = set_aside_artifact(svc, s, artifact, error, found_by)
            set_aside_rows.append(
                {"artifact_id": artifact_id, "reason": row.reason, "outcome": row.outcome}
            )
    return {"checked": checked, "set_aside": set_aside_rows}


def quarantine_rows(s: Session, config: str | None = None) -> list[dict[str, Any]]:
    """The quarantine record as plain rows, newest first (of one configuration, if given)."""
    q = select(QuarantinedArtifact).order_by(QuarantinedArtifact.id.desc())
    if config is not None:
        q = q.where(QuarantinedArtifact.config == config)
    return [
        {
            "artifact_id": row.artifact_id,
            "kind": row.kind,
            "config": row.config,
            "path": row.path,
            "moved_to": row.moved_to,
            "sha256": row.sha256,
            "reason": row.reason,
            "found_by": row.found_by,
            "outcome": row.outcome,
            "at": row.created_at.isoformat(),
        }
        for row in s.scalars(q)
    ]


def _latest_row(s: Session, artifact_id: str, sha256: str) -> QuarantinedArtifact | None:
    q = select(QuarantinedArtifact).where(
        QuarantinedArtifact.artifact_id == artifact_id, QuarantinedArtifact.sha256 == sha256
    )
    return s.scalars(q.order_by(QuarantinedArtifact.id.desc()).limit(1)).first()


def was_set_aside(s: Session, artifact_id: str) -> bool:
    """Whether ``artifact_id`` was ever set aside."""
    q = select(QuarantinedArtifact.id).where(QuarantinedArtifact.artifact_id == artifact_id)
    return s.scalar(q.limit(1)) is not None


def quarantine_count(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(QuarantinedArtifact)) or 0)

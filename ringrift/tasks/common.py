"""Helpers the stage tasks share: loading a model from the ledger into this worker's cache."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from ringrift.errors import ServiceError
from ringrift.infra.service import Service
from ringrift.pipeline.quarantine import confirmed, set_aside_artifact
from ringrift.store import ArtifactCorrupt
from ringrift.store.models import Artifact, Model


def model_file(svc: Service, s: Session, model_id: str) -> tuple[Model, Path]:
    """The ledger row of a model and a verified local copy of its weights."""
    model = s.get(Model, model_id)
    if model is None:
        raise ServiceError(f"model {model_id!r} is not in the ledger")
    artifact = s.get(Artifact, model.artifact_id)
    if artifact is None:
        raise ServiceError(f"model {model_id}: weights artifact {model.artifact_id} is missing")
    try:
        return model, svc.cache.pull(artifact.id, artifact.path, artifact.sha256)
    except (ArtifactCorrupt, FileNotFoundError) as e:
        if not confirmed(svc.store, artifact.path, artifact.sha256, e):
            raise  # the store's copy is sound: the transfer failed; a retry reads it again
        row = set_aside_artifact(svc, s, artifact, e, f"loading {model_id} on {svc.settings.host}")
        raise ServiceError(
            f"model {model_id}: its weights {artifact.id} were set aside ({row.reason}); "
            f"{row.outcome}"
        ) from None


def model_evaluator(svc: Service, s: Session, model_id: str, board: str, device: str):  # noqa: ANN201
    """An MCTS evaluator for a ledger model; a mismatched architecture or encoder is an error."""
    from ringrift.ai.net_evaluator import load_evaluator
    from ringrift.game import BoardType

    model, path = model_file(svc, s, model_id)
    return load_evaluator(path, BoardType(board), model.architecture, device)

"""Helpers the stage tasks share: loading a model from the ledger into this worker's cache."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from ringrift.errors import ServiceError
from ringrift.infra.service import Service
from ringrift.pipeline.quarantine import SetAside, verified
from ringrift.store.models import Artifact, Model


def model_file(svc: Service, s: Session, model_id: str) -> tuple[Model, Path]:
    """The ledger row of a model and a verified local copy of its weights."""
    model = s.get(Model, model_id)
    if model is None:
        raise ServiceError(f"model {model_id!r} is not in the ledger")
    artifact = s.get(Artifact, model.artifact_id)
    if artifact is None:
        raise ServiceError(f"model {model_id}: weights artifact {model.artifact_id} is missing")
    found_by = f"loading {model_id} on {svc.settings.host}"
    try:
        return model, verified(svc, s, artifact, found_by, lambda path: path)
    except SetAside as e:
        raise ServiceError(
            f"model {model_id}: its weights {e.artifact_id} were set aside ({e.reason}); "
            f"{e.outcome}"
        ) from None


def model_evaluator(svc: Service, s: Session, model_id: str, board: str, device: str):  # noqa: ANN201
    """An MCTS evaluator for a ledger model; a mismatched architecture or encoder is an error."""
    from ringrift.ai.net_evaluator import load_evaluator
    from ringrift.game import BoardType

    model, path = model_file(svc, s, model_id)
    return load_evaluator(path, BoardType(board), model.architecture, device)

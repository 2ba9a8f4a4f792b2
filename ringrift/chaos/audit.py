"""What a hurt loop lost or did twice, read from the ledger and the store after it finished.

Lost: a generation asked for and not made; a stored shard whose games never reached the ledger;
an artifact that no longer matches its checksum; a file in the store no ledger row names (a
write left half-done); a promoted model whose weights are missing.
Duplicated: a game played twice (two ledger games of one configuration with the same seed, or
one game in two shards), an evaluation chunk recorded twice, two models for one generation, a
rating given twice to one model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ringrift.infra.service import Service
from ringrift.pipeline.quarantine import store_digest
from ringrift.pipeline.state import is_done, uncollected_shards
from ringrift.store import ArtifactStore
from ringrift.store.models import Artifact, EvaluationMatch, Game, Model, PipelineState, Rating


@dataclass
class Audit:
    lost: dict[str, int] = field(default_factory=dict)
    duplicated: dict[str, int] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def duplicated_total(self) -> int:
        return sum(self.duplicated.values())


def _over_one(s: Session, *columns: Any, where: Any = None) -> int:
    """How many rows beyond the first share each value of ``columns``."""
    q = select(func.count().label("n"))
    if where is not None:
        q = q.where(where)
    groups = q.select_from(columns[0].table).group_by(*columns).having(func.count() > 1).subquery()
    return int(s.scalar(select(func.coalesce(func.sum(groups.c.n - 1), 0))) or 0)


def audit(svc: Service, config: str, generations: int) -> Audit:
    """The loop of ``config`` that was asked for ``generations`` generations."""
    out = Audit()
    with svc.session() as s:
        st = s.get(PipelineState, config)
        reached = int(st.generation) if st is not None else 0
        out.facts.update(
            generation=reached,
            done=bool(st is not None and is_done(s, st)),
            games=int(s.scalar(select(func.count()).where(Game.config == config)) or 0),
            models=int(s.scalar(select(func.count()).where(Model.config == config)) or 0),
            matches=int(
                s.scalar(select(func.count()).where(EvaluationMatch.config == config)) or 0
            ),
            # models that were ever the best (a rolled-back one was, until its check)
            promotions=int(
                s.scalar(
                    select(func.count()).where(
                        Model.config == config, Model.status.in_(("promoted", "rolled_back"))
                    )
                )
                or 0
            ),
            checks=int(
                s.scalar(
                    select(func.count(func.distinct(EvaluationMatch.evaluation_id))).where(
                        EvaluationMatch.config == config,
                        EvaluationMatch.evaluation_id.startswith("check-"),
                    )
                )
                or 0
            ),
        )
        out.lost["generations not made"] = max(0, generations - reached)
        out.lost["shards never collected"] = len(uncollected_shards(s, config, older_than_s=0))
        out.lost["artifacts failing their checksum"] = _corrupt(svc, s)
        out.lost["files in the store the ledger does not know"] = len(_strays(svc, s))
        missing = select(Model.id).where(
            Model.config == config,
            Model.status == "promoted",
            Model.artifact_id.not_in(select(Artifact.id)),
        )
        out.lost["promoted models without weights"] = len(list(s.scalars(missing)))
        out.duplicated["games played twice"] = _over_one(s, Game.config, Game.seed)
        out.duplicated["evaluation chunks recorded twice"] = _over_one(
            s, EvaluationMatch.evaluation_id, EvaluationMatch.opponent, EvaluationMatch.first_game
        )
        out.duplicated["models per generation beyond one"] = _over_one(
            s, Model.config, Model.generation
        )
        out.duplicated["ratings per model beyond one"] = _over_one(
            s, Rating.config, Rating.model_id, where=Rating.model_id.is_not(None)
        )
    return out


ARTIFACT_FOLDERS = ("shard", "dataset", "model")  # what tasks store; runs/ is a working folder


def _strays(svc: Service, s: Session) -> list[str]:
    """Files in the folder store's artifact folders that no ledger row names: a write that
    was left half-done, or done without its record."""
    if not isinstance(svc.store, ArtifactStore):
        return []
    known = set(s.scalars(select(Artifact.path)))
    root = svc.store.root
    return sorted(
        rel
        for folder in ARTIFACT_FOLDERS
        if (root / folder).is_dir()
        for p in (root / folder).rglob("*")
        if p.is_file() and (rel := p.relative_to(root).as_posix()) not in known
    )


def _corrupt(svc: Service, s: Session) -> int:
    """Recorded artifacts whose file in the store is missing or changed (read from the store
    itself: a verified cached copy would hide a damaged original)."""
    return sum(
        store_digest(svc.store, artifact.path) != artifact.sha256
        for artifact in s.scalars(select(Artifact))
    )

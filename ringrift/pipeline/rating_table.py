"""A configuration's rating table in the ledger: every recorded evaluation chunk fitted at once
(``pipeline.ratings``), each model keyed by its weights' sha256, random pinned at 0.

``refit`` recomputes the whole table from the ledger and writes it only over a fit of fewer
chunks (``RatingFit``), so two fits running at once, or out of order, leave the newest; nothing
is ever incremented. ``table`` reads what is stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from ringrift.errors import ServiceError
from ringrift.pipeline.ratings import Pairing, fit
from ringrift.store.db import insert_ignoring_duplicates
from ringrift.store.models import Artifact, EvaluationMatch, Model, Rating, RatingFit

log = logging.getLogger(__name__)
BASELINES = ("random", "heuristic")
ANCHOR = "random"


@dataclass(frozen=True)
class Player:
    """A model as the fit sees it: its weights' sha256, and the first model row holding them."""

    sha256: str
    model_id: str
    generation: int


def players(s: Session, config: str) -> dict[str, Player]:
    """Model id -> the player it is, for every model of ``config``."""
    rows = s.execute(
        select(Model.id, Model.generation, Artifact.sha256)
        .join(Artifact, Model.artifact_id == Artifact.id)
        .where(Model.config == config)
        .order_by(Model.generation, Model.id)
    ).all()
    first: dict[str, Player] = {}
    out: dict[str, Player] = {}
    for model_id, generation, sha in rows:
        out[model_id] = first.setdefault(sha, Player(sha, model_id, generation))
    return out


def fit_config(s: Session, config: str) -> tuple[list[Rating], int, int]:
    """The table a fit of every recorded chunk of ``config`` gives, with how many chunks it
    read and the newest one's id."""
    models = players(s, config)

    def key(name: str) -> str:
        if name in BASELINES:
            return name
        if name not in models:
            raise ServiceError(f"{config}: evaluation names model {name!r}, not in the ledger")
        return models[name].sha256

    chunks = s.execute(
        select(
            EvaluationMatch.id,
            EvaluationMatch.candidate_id,
            EvaluationMatch.opponent,
            EvaluationMatch.games,
            EvaluationMatch.wins,
            EvaluationMatch.draws,
            EvaluationMatch.score,
        ).where(EvaluationMatch.config == config)
    ).all()
    pairings = []
    for _, candidate, opponent, games, wins, draws, score in chunks:
        a, b = key(candidate), key(opponent)
        if a == b:  # the same weights under two names: no information
            continue
        pairings.append(Pairing(a, b, games, wins + 0.5 * draws if score is None else score))
    by_sha = {p.sha256: p for p in models.values()}
    table = []
    for r in fit(pairings, anchor=ANCHOR):
        p = by_sha.get(r.player)
        table.append(
            Rating(
                config=config,
                player=r.player,
                model_id=p.model_id if p else None,
                generation=p.generation if p else None,
                rating=r.rating,
                low=r.low,
                high=r.high,
                games=round(r.games),
            )
        )
    return table, len(chunks), max((c[0] for c in chunks), default=0)


def refit(s: Session, config: str) -> int | None:
    """Fit ``config``'s table again and store it unless a fit of these chunks or newer ones is
    stored already. Returns the number of players written, or None when nothing was."""
    table, matches, last = fit_config(s, config)
    if not matches:
        return None
    fits = cast(Table, RatingFit.__table__)
    s.execute(
        insert_ignoring_duplicates(s, fits, ["config"]),
        [{"config": config, "matches": 0, "last_match_id": 0}],
    )
    moved = s.execute(
        update(RatingFit)
        .where(RatingFit.config == config, RatingFit.last_match_id < last)
        .values(matches=matches, last_match_id=last)
    )
    if cast(Any, moved).rowcount != 1:
        log.info("%s: ratings of these %d chunks or newer are stored already", config, matches)
        return None
    s.execute(delete(Rating).where(Rating.config == config))
    s.add_all(table)
    s.flush()
    return len(table)


def table(s: Session, config: str) -> list[Rating]:
    """The stored table of ``config``, best first."""
    return list(
        s.scalars(select(Rating).where(Rating.config == config).order_by(Rating.rating.desc()))
    )


def stored_fit(s: Session, config: str) -> RatingFit | None:
    return s.get(RatingFit, config)


def promoted_ratings(s: Session, config: str) -> list[tuple[str, float]]:
    """(model id, rating) of each promoted model in the stored table, oldest first: what the
    scheduler's strength velocity and ``ringrift status`` read."""
    rows = s.execute(
        select(Rating.model_id, Rating.rating)
        .join(Model, Model.id == Rating.model_id)
        .where(Rating.config == config, Model.status == "promoted")
        .order_by(Model.generation, Model.id)
    ).all()
    return [(model_id, rating) for model_id, rating in rows if model_id is not None]

"""The ledger's tables: games, artifacts, models, training runs, evaluations, ratings, pipelines.

The ledger is the source of truth (DESIGN.md): Redis carries messages, and anything a stage needs to
find again lives here. Ids are strings chosen by whoever produces the row (a game's UUID, an
artifact's ``kind-<sha256 prefix>``), so a redelivered task that records the same thing twice
finds its own row instead of making a second one.

Timestamps are UTC. PostgreSQL keeps the offset; SQLite gives them back naive (still UTC).

The schema itself is made by the Alembic migrations in ``migrations/``; these classes are what the
code reads and writes, and a test checks that the two agree on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ringrift.game.rules_version import RULES_VERSION

# Deterministic constraint names: migrations can refer to them, and both databases agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ARTIFACT_KINDS = ("shard", "dataset", "model", "checkpoint")
RUN_STATUSES = ("pending", "running", "done", "failed", "cancelled")

ID = String(128)  # game UUIDs, "shard-<16 hex>", "model-square8_2p-g3", evaluation ids
CONFIG = String(32)  # "square8_2p"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _created_at() -> Mapped[datetime]:
    # Python-side default for microsecond precision; the server default covers raw SQL inserts.
    return mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )


def _updated_at() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True),
        nullable=False,
        default=utcnow,
        onupdate=utcnow,
        server_default=func.now(),
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {list[int]: JSON}


class Artifact(Base):
    """A checksummed file in the artifact store; ``path`` is relative to the store root."""

    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    config: Mapped[str | None] = mapped_column(CONFIG)
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(f"kind IN {ARTIFACT_KINDS!r}", name="kind"),
        CheckConstraint("length(sha256) = 64", name="sha256_length"),
        CheckConstraint("size >= 0", name="size_nonnegative"),
        Index(None, "kind", "config"),
    )


class QuarantinedArtifact(Base):
    """A file that failed its checksum or its structure check, moved aside out of the store's
    artifact folders: what it was, where it went, why, and how it was replaced.

    ``artifact_id`` is the artifact's id, or ``<run id>@<step>`` for a training checkpoint;
    ``moved_to`` is None when there was no file left to move. ``outcome`` says what replaced it
    (rebuilt from the ledger, played again by selfplay, trained again from an earlier
    checkpoint) or why nothing could."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    artifact_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[str | None] = mapped_column(CONFIG)
    path: Mapped[str] = mapped_column(String(512))
    moved_to: Mapped[str | None] = mapped_column(String(512))
    sha256: Mapped[str | None] = mapped_column(String(64))  # the ledger's (None: unrecorded)
    reason: Mapped[str] = mapped_column(Text)
    found_by: Mapped[str] = mapped_column(String(128))  # the stage and host that found it
    outcome: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (Index(None, "artifact_id"),)


class TrainingRun(Base):
    """One training of a candidate, trained in segments (``segment`` counts the hand-offs)
    under a fenced lease; its checkpoints are listed in ``checkpoints``."""

    __tablename__ = "training_runs"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    config: Mapped[str] = mapped_column(CONFIG)
    generation: Mapped[int] = mapped_column(Integer)
    dataset_artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"))
    # models <-> training_runs reference each other; use_alter breaks the cycle for CREATE.
    init_model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id", use_alter=True))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_steps: Mapped[int] = mapped_column(Integer)
    # the run's frozen TrainConfig as JSON, fixed when the run is created (None: the preset's)
    train_config: Mapped[str | None] = mapped_column(Text)
    last_loss: Mapped[float | None] = mapped_column(Float)
    samples_per_s: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    result_model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id", use_alter=True))
    error: Mapped[str | None] = mapped_column(Text)
    # fencing token of the lease allowed to write this run (see ringrift/pipeline/lease.py)
    lease_token: Mapped[int | None] = mapped_column(BigInteger)
    # the segment a delivery must carry to train (a stale hand-off message finds it moved on)
    segment: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    resumed_from_step: Mapped[int | None] = mapped_column(Integer)  # of the latest segment
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        Index(None, "config", "generation"),
    )


class Checkpoint(Base):
    """A training checkpoint file, recorded before it takes its name: resuming trusts only a
    file whose checksum matches its row. ``path`` is relative to the artifact store root."""

    __tablename__ = "checkpoints"

    run_id: Mapped[str] = mapped_column(ForeignKey("training_runs.id"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    lease_token: Mapped[int] = mapped_column(BigInteger)  # the writer's
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (CheckConstraint("length(sha256) = 64", name="sha256_length"),)


class Model(Base):
    """A trained network; its weights are the artifact. Loaders check architecture and encoder."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    config: Mapped[str] = mapped_column(CONFIG)
    generation: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(32))  # "b4c64": blocks x channels
    encoder_version: Mapped[int] = mapped_column(Integer)
    # the rules version of the games it was trained on
    rules_version: Mapped[int] = mapped_column(Integer, default=RULES_VERSION, server_default="1")
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("models.id"))
    training_run_id: Mapped[str | None] = mapped_column(ForeignKey("training_runs.id"))
    # "candidate" until the promotion gate decides: "promoted" or "rejected"
    status: Mapped[str] = mapped_column(String(16), default="candidate", server_default="candidate")
    decision: Mapped[str | None] = mapped_column(Text)  # the gate's reasons, JSON
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"))
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (Index(None, "config", "generation"),)


class Game(Base):
    """One finished selfplay game, ingested from a shard; ``id`` is the producer's UUID."""

    __tablename__ = "games"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    config: Mapped[str] = mapped_column(CONFIG)
    generation: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id"))
    seed: Mapped[int] = mapped_column(BigInteger)
    record: Mapped[str] = mapped_column(Text)  # GameRecord.to_json()
    targets: Mapped[str] = mapped_column(Text)  # JSON [[move index, [[action, prob], ...]], ...]
    # JSON {"settings", "root_values", "simulations"} of the search that played it (the model
    # is model_id): what every training sample of the game can be traced back to
    search: Mapped[str | None] = mapped_column(Text)
    winner: Mapped[int | None] = mapped_column(Integer)
    ranking: Mapped[list[int]] = mapped_column()  # one rank per seat
    length: Mapped[int] = mapped_column(Integer)  # moves, bookkeeping moves included
    termination: Mapped[str] = mapped_column(String(32))  # victory type
    # the rules version it was played under (ringrift.game.rules_version); export takes only
    # games of the current one
    rules_version: Mapped[int] = mapped_column(Integer, default=RULES_VERSION, server_default="1")
    shard_artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"))
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        Index(None, "config", "generation"),
        Index(None, "config", "created_at"),
        Index(None, "config", "rules_version"),
        Index(None, "shard_artifact_id"),
    )


class EvaluationMatch(Base):
    """One chunk of a candidate's match against one opponent, recorded once: games
    ``first_game`` to ``first_game + games - 1`` of that match. ``score`` is the candidate's
    summed rank score (1 first, 0 last, ties shared) and ``histogram`` its games per score value
    (JSON), which the sequential test reads; rows written before chunks have neither."""

    __tablename__ = "evaluation_matches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[str] = mapped_column(ID)
    config: Mapped[str] = mapped_column(CONFIG)
    candidate_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    opponent: Mapped[str] = mapped_column(ID)  # "random", "heuristic" or a model id
    first_game: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    games: Mapped[int] = mapped_column(Integer)
    wins: Mapped[int] = mapped_column(Integer)
    losses: Mapped[int] = mapped_column(Integer)
    draws: Mapped[int] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    histogram: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        UniqueConstraint("evaluation_id", "opponent", "first_game"),
        Index(None, "candidate_id"),
    )


class Rating(Base):
    """One player's rating in its configuration's newest fit (``pipeline.ratings``): a model,
    keyed by its weights' sha256 so that a rating never carries over to other weights, or a
    baseline (``random``, pinned at 0, and ``heuristic``). ``model_id`` names the model."""

    __tablename__ = "ratings"

    config: Mapped[str] = mapped_column(CONFIG, primary_key=True)
    player: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 or a baseline
    model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id"))
    generation: Mapped[int | None] = mapped_column(Integer)
    rating: Mapped[float] = mapped_column(Float)  # Elo, random at 0
    low: Mapped[float] = mapped_column(Float)  # 95% interval
    high: Mapped[float] = mapped_column(Float)
    games: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = _updated_at()


class RatingFit(Base):
    """Which recorded chunks a configuration's stored ratings were fitted from: a fit is
    written only over an older one (fewer chunks), so concurrent fits end with the newest."""

    __tablename__ = "rating_fits"

    config: Mapped[str] = mapped_column(CONFIG, primary_key=True)
    matches: Mapped[int] = mapped_column(Integer)  # evaluation chunks the fit read
    last_match_id: Mapped[int] = mapped_column(Integer)  # the newest of them
    updated_at: Mapped[datetime] = _updated_at()


class PipelineState(Base):
    """Where one configuration's loop stands; the beat reconciler reads it.

    ``version`` is bumped by every write: the ORM checks it on flush (a write based on a stale
    read raises ``StaleDataError``), and ``db.cas_best_model`` bumps it when it moves the pointer.
    """

    __tablename__ = "pipeline_state"

    config: Mapped[str] = mapped_column(CONFIG, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    best_model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id"))
    stage: Mapped[str] = mapped_column(String(32), default="selfplay", server_default="selfplay")
    last_export_game_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the loop stops starting work once ``generation`` reaches this (None: run on)
    target_generations: Mapped[int | None] = mapped_column(Integer)
    preset: Mapped[str] = mapped_column(String(32), default="default", server_default="default")
    # the scheduler's: curriculum weight (set by a person), the priority and target it last
    # recorded, and the selfplay exploration level the feedback loop set
    weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    priority: Mapped[float | None] = mapped_column(Float)
    target: Mapped[int | None] = mapped_column(Integer)
    exploration: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = _updated_at()
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class ScheduleChange(Base):
    """A change the scheduler or the feedback loop made to a configuration, with its reason:
    a selfplay target moved past its thresholds, or the exploration level raised or lowered."""

    __tablename__ = "schedule_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    config: Mapped[str] = mapped_column(CONFIG)
    kind: Mapped[str] = mapped_column(String(16))  # "target" or "exploration"
    priority: Mapped[float | None] = mapped_column(Float)
    share: Mapped[float | None] = mapped_column(Float)
    target: Mapped[int | None] = mapped_column(Integer)
    exploration: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (Index(None, "config", "id"),)


__all__ = [
    "ARTIFACT_KINDS",
    "RUN_STATUSES",
    "Artifact",
    "Base",
    "EvaluationMatch",
    "Game",
    "Model",
    "PipelineState",
    "QuarantinedArtifact",
    "Rating",
    "RatingFit",
    "ScheduleChange",
    "TrainingRun",
    "utcnow",
]

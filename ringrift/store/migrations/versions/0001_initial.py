"""Initial ledger: artifacts, training runs, models, games, evaluations, ratings, pipeline state.

Written from ``alembic revision --autogenerate`` and reviewed: portable server defaults, explicit
constraint names (the naming convention in ``models.py``), and the models <-> training_runs
foreign-key cycle closed after both tables exist.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=128)
CONFIG = sa.String(length=32)

# training_runs -> models, while models -> training_runs: on PostgreSQL these two are added with
# ALTER once models exists; SQLite cannot ALTER constraints but accepts a forward reference, so
# there they stay inline (use_alter=True constraints are rendered inline exactly when the
# dialect has no ALTER).
_RUN_MODEL_FKS = (
    ("fk_training_runs_init_model_id_models", "init_model_id"),
    ("fk_training_runs_result_model_id_models", "result_model_id"),
)


def _timestamp(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("config", CONFIG, nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "kind IN ('shard', 'dataset', 'model', 'checkpoint')", name="ck_artifacts_kind"
        ),
        sa.CheckConstraint("length(sha256) = 64", name="ck_artifacts_sha256_length"),
        sa.CheckConstraint("size >= 0", name="ck_artifacts_size_nonnegative"),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
    )
    op.create_index("ix_artifacts_kind_config", "artifacts", ["kind", "config"])

    op.create_table(
        "training_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("config", CONFIG, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("dataset_artifact_id", ID, nullable=False),
        sa.Column("init_model_id", ID, nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=False),
        sa.Column("last_loss", sa.Float(), nullable=True),
        sa.Column("checkpoint_artifact_id", ID, nullable=True),
        sa.Column("result_model_id", ID, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'failed')", name="ck_training_runs_status"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_artifact_id"],
            ["artifacts.id"],
            name="fk_training_runs_dataset_artifact_id_artifacts",
        ),
        sa.ForeignKeyConstraint(
            ["checkpoint_artifact_id"],
            ["artifacts.id"],
            name="fk_training_runs_checkpoint_artifact_id_artifacts",
        ),
        *(
            sa.ForeignKeyConstraint([column], ["models.id"], name=name, use_alter=True)
            for name, column in _RUN_MODEL_FKS
        ),
        sa.PrimaryKeyConstraint("id", name="pk_training_runs"),
    )
    op.create_index("ix_training_runs_config_generation", "training_runs", ["config", "generation"])

    op.create_table(
        "models",
        sa.Column("id", ID, nullable=False),
        sa.Column("config", CONFIG, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("encoder_version", sa.Integer(), nullable=False),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("training_run_id", ID, nullable=True),
        sa.Column("status", sa.String(16), server_default="candidate", nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("artifact_id", ID, nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["artifact_id"], ["artifacts.id"], name="fk_models_artifact_id_artifacts"
        ),
        sa.ForeignKeyConstraint(["parent_id"], ["models.id"], name="fk_models_parent_id_models"),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_runs.id"],
            name="fk_models_training_run_id_training_runs",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
    )
    op.create_index("ix_models_config_generation", "models", ["config", "generation"])

    if op.get_context().dialect.supports_alter:
        for name, column in _RUN_MODEL_FKS:
            op.create_foreign_key(name, "training_runs", "models", [column], ["id"])

    op.create_table(
        "games",
        sa.Column("id", ID, nullable=False),
        sa.Column("config", CONFIG, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("model_id", ID, nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("winner", sa.Integer(), nullable=True),
        sa.Column("ranking", sa.JSON(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("termination", sa.String(length=32), nullable=False),
        sa.Column("shard_artifact_id", ID, nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_games_model_id_models"),
        sa.ForeignKeyConstraint(
            ["shard_artifact_id"], ["artifacts.id"], name="fk_games_shard_artifact_id_artifacts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_games"),
    )
    op.create_index("ix_games_config_generation", "games", ["config", "generation"])
    op.create_index("ix_games_config_created_at", "games", ["config", "created_at"])
    op.create_index("ix_games_shard_artifact_id", "games", ["shard_artifact_id"])

    op.create_table(
        "evaluation_matches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("evaluation_id", ID, nullable=False),
        sa.Column("config", CONFIG, nullable=False),
        sa.Column("candidate_id", ID, nullable=False),
        sa.Column("opponent", ID, nullable=False),
        sa.Column("games", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("draws", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["models.id"], name="fk_evaluation_matches_candidate_id_models"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_evaluation_matches"),
        sa.UniqueConstraint(
            "evaluation_id", "opponent", name="uq_evaluation_matches_evaluation_id_opponent"
        ),
    )
    op.create_index("ix_evaluation_matches_candidate_id", "evaluation_matches", ["candidate_id"])

    op.create_table(
        "ratings",
        sa.Column("model_id", ID, nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("games", sa.Integer(), server_default="0", nullable=False),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_ratings_model_id_models"),
        sa.PrimaryKeyConstraint("model_id", "pool", name="pk_ratings"),
    )

    op.create_table(
        "pipeline_state",
        sa.Column("config", CONFIG, nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("generation", sa.Integer(), server_default="0", nullable=False),
        sa.Column("best_model_id", ID, nullable=True),
        sa.Column("stage", sa.String(length=32), server_default="selfplay", nullable=False),
        sa.Column("last_export_game_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("target_generations", sa.Integer(), nullable=True),
        sa.Column("preset", sa.String(32), server_default="default", nullable=False),
        _timestamp("updated_at"),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["best_model_id"], ["models.id"], name="fk_pipeline_state_best_model_id_models"
        ),
        sa.PrimaryKeyConstraint("config", name="pk_pipeline_state"),
    )


def downgrade() -> None:
    # Indexes go with their tables. db.downgrade runs SQLite with foreign keys off, so only
    # PostgreSQL needs the cycle opened first.
    op.drop_table("pipeline_state")
    op.drop_table("ratings")
    op.drop_table("evaluation_matches")
    op.drop_table("games")
    if op.get_context().dialect.supports_alter:
        for name, _column in _RUN_MODEL_FKS:
            op.drop_constraint(name, "training_runs", type_="foreignkey")
    op.drop_table("models")
    op.drop_table("training_runs")
    op.drop_table("artifacts")

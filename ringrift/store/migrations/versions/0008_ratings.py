"""Ratings per exact model: the ``ratings`` table (never written before this) becomes one row per
player of a configuration's newest rating fit, a model keyed by its weights' sha256 or a
baseline, with its 95% interval; ``rating_fits`` says which recorded chunks that fit read.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=128)
CONFIG = sa.String(length=32)


def _timestamp(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.drop_table("ratings")
    op.create_table(
        "ratings",
        sa.Column("config", CONFIG, nullable=False),
        sa.Column("player", sa.String(length=64), nullable=False),
        sa.Column("model_id", ID, nullable=True),
        sa.Column("generation", sa.Integer(), nullable=True),
        sa.Column("rating", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("games", sa.Integer(), nullable=False),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_ratings_model_id_models"),
        sa.PrimaryKeyConstraint("config", "player", name="pk_ratings"),
    )
    op.create_table(
        "rating_fits",
        sa.Column("config", CONFIG, nullable=False),
        sa.Column("matches", sa.Integer(), nullable=False),
        sa.Column("last_match_id", sa.Integer(), nullable=False),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("config", name="pk_rating_fits"),
    )


def downgrade() -> None:
    op.drop_table("rating_fits")
    op.drop_table("ratings")
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

"""Evaluation in chunks: a match is recorded as chunks of games (``first_game`` names one), each
with the candidate's summed rank score and its games per score value, so that a sequential test
can read the games as they come and several queues can play one match.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_UNIQUE = "uq_evaluation_matches_evaluation_id_opponent"
NEW_UNIQUE = "uq_evaluation_matches_evaluation_id_opponent_first_game"


def upgrade() -> None:
    with op.batch_alter_table("evaluation_matches") as batch:
        batch.add_column(sa.Column("first_game", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("histogram", sa.Text(), nullable=True))
        batch.drop_constraint(OLD_UNIQUE, type_="unique")
        batch.create_unique_constraint(NEW_UNIQUE, ["evaluation_id", "opponent", "first_game"])


def downgrade() -> None:
    with op.batch_alter_table("evaluation_matches") as batch:
        batch.drop_constraint(NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint(OLD_UNIQUE, ["evaluation_id", "opponent"])
        for column in ("histogram", "score", "first_game"):
            batch.drop_column(column)

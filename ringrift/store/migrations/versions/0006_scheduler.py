"""The selfplay scheduler and its feedback loop: a curriculum weight, the recorded priority,
target and exploration level per configuration, every change with its reason, and when each
candidate was decided (how long a configuration has gone without a promotion).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_state") as batch:
        batch.add_column(sa.Column("weight", sa.Float(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("priority", sa.Float(), nullable=True))
        batch.add_column(sa.Column("target", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("exploration", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "schedule_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("config", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("priority", sa.Float(), nullable=True),
        sa.Column("share", sa.Float(), nullable=True),
        sa.Column("target", sa.Integer(), nullable=True),
        sa.Column("exploration", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_schedule_changes_config_id", "schedule_changes", ["config", "id"])


def downgrade() -> None:
    op.drop_index("ix_schedule_changes_config_id", table_name="schedule_changes")
    op.drop_table("schedule_changes")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("decided_at")
    with op.batch_alter_table("pipeline_state") as batch:
        for column in ("exploration", "target", "priority", "weight"):
            batch.drop_column(column)

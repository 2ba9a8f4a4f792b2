"""Games and models record the rules version they were played or trained under; rows from
before it existed were made under the first rules (version 1). Nothing is deleted: export
simply leaves older games out, and older models are refused where a model of the current
rules is needed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("games", "models"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("rules_version", sa.Integer(), nullable=False, server_default="1")
            )
    with op.batch_alter_table("games") as batch:
        batch.create_index("ix_games_config_rules_version", ["config", "rules_version"])


def downgrade() -> None:
    with op.batch_alter_table("games") as batch:
        batch.drop_index("ix_games_config_rules_version")
    for table in ("games", "models"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("rules_version")

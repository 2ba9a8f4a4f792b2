"""Segmented, cancellable training with checkpoints recorded in the ledger.

Training runs gain their frozen training config, the segment counter their hand-off messages
carry, a cancel request, the rate and ETA shown by ``ringrift status``, the step the latest
segment resumed from, and the status ``cancelled``. Checkpoint files get a table of their
checksums. The unused ``checkpoint_artifact_id`` column goes: checkpoints are rows of their own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('pending', 'running', 'done', 'failed')"
NEW_STATUSES = "status IN ('pending', 'running', 'done', 'failed', 'cancelled')"
# 0001 gave the status check an already-prefixed name, which the naming convention prefixed
# again; this migration replaces it under the name the models declare.
OLD_CHECK_NAME = "ck_training_runs_ck_training_runs_status"


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("train_config", sa.Text(), nullable=True))
        batch.add_column(sa.Column("samples_per_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("eta_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("segment", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("resumed_from_step", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.drop_constraint(
            "fk_training_runs_checkpoint_artifact_id_artifacts", type_="foreignkey"
        )
        batch.drop_column("checkpoint_artifact_id")
        batch.drop_constraint(op.f(OLD_CHECK_NAME), type_="check")
        batch.create_check_constraint(op.f("ck_training_runs_status"), NEW_STATUSES)
    op.create_table(
        "checkpoints",
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("lease_token", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("length(sha256) = 64", name="ck_checkpoints_sha256_length"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["training_runs.id"], name="fk_checkpoints_run_id_training_runs"
        ),
        sa.PrimaryKeyConstraint("run_id", "step", name="pk_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
    op.execute("UPDATE training_runs SET status = 'failed' WHERE status = 'cancelled'")
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_constraint(op.f("ck_training_runs_status"), type_="check")
        batch.create_check_constraint(op.f(OLD_CHECK_NAME), OLD_STATUSES)
        batch.add_column(sa.Column("checkpoint_artifact_id", sa.String(length=128), nullable=True))
        batch.create_foreign_key(
            "fk_training_runs_checkpoint_artifact_id_artifacts",
            "artifacts",
            ["checkpoint_artifact_id"],
            ["id"],
        )
        for column in (
            "train_config",
            "cancel_requested",
            "resumed_from_step",
            "segment",
            "eta_s",
            "samples_per_s",
        ):
            batch.drop_column(column)

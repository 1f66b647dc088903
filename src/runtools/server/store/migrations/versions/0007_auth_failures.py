"""failed guesses, shared by every node and worker for throttling

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("throttle", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("auth_failures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_auth_failures_subject_failed_at", ["subject", "failed_at"], unique=False
        )
        batch_op.create_index(
            "ix_auth_failures_throttle_failed_at", ["throttle", "failed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_auth_failures_throttle_failed_at")
        batch_op.drop_index("ix_auth_failures_subject_failed_at")
    op.drop_table("auth_failures")

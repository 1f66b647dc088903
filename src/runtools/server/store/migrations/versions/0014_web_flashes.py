"""web flashes: what a dashboard page shows once after a redirect (a new key's secret), sealed

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_flashes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_web_flashes_session_id", "web_flashes", ["session_id"])
    op.create_index("ix_web_flashes_expires_at", "web_flashes", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_web_flashes_expires_at", table_name="web_flashes")
    op.drop_index("ix_web_flashes_session_id", table_name="web_flashes")
    op.drop_table("web_flashes")

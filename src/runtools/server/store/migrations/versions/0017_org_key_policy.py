"""organizations: a key policy (the longest a key may live, and whether it must expire)

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: organizations is referenced by every other table, so it is
    # not rebuilt (as a batch operation would on SQLite).
    op.add_column(
        "organizations", sa.Column("max_key_lifetime", sa.String(length=16), nullable=True)
    )
    op.add_column(
        "organizations",
        sa.Column("require_key_expiry", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("organizations", "require_key_expiry")
    op.drop_column("organizations", "max_key_lifetime")

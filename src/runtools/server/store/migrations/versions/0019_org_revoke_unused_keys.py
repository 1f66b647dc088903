"""organizations: keys unused for this many days are revoked (a key policy)

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, as 0017: organizations is not rebuilt on SQLite.
    op.add_column(
        "organizations", sa.Column("revoke_unused_after_days", sa.Integer(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("organizations", "revoke_unused_after_days")

"""sandboxes: the registered SSH keys let in besides the owner's and admins'

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sandboxes") as batch_op:
        batch_op.add_column(sa.Column("ssh_key_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sandboxes") as batch_op:
        batch_op.drop_column("ssh_key_ids")

"""sandboxes

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_LIVE = sa.text("status <> 'destroyed'")


def upgrade() -> None:
    op.create_table(
        "sandboxes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("owner_user_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.String(length=500), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("env_keys", sa.JSON(), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=True),
        sa.Column("idle_timeout", sa.Integer(), nullable=True),
        sa.Column("vcpus", sa.Float(), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
        sa.Column("disk_mib", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sandboxes", schema=None) as batch_op:
        batch_op.create_index("ix_sandboxes_org_created", ["org_id", "created_at", "id"])
        batch_op.create_index("ix_sandboxes_node_status", ["node", "status"])
        batch_op.create_index(
            "uq_sandboxes_org_live_name",
            ["org_id", "name"],
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        )
    op.create_table(
        "sandbox_tags",
        sa.Column("sandbox_id", sa.String(length=40), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["sandbox_id"], ["sandboxes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sandbox_id", "tag"),
    )
    with op.batch_alter_table("sandbox_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sandbox_tags_tag"), ["tag"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sandbox_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sandbox_tags_tag"))
    op.drop_table("sandbox_tags")
    with op.batch_alter_table("sandboxes", schema=None) as batch_op:
        batch_op.drop_index("uq_sandboxes_org_live_name")
        batch_op.drop_index("ix_sandboxes_node_status")
        batch_op.drop_index("ix_sandboxes_org_created")
    op.drop_table("sandboxes")

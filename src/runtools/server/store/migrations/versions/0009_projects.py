"""projects group an organization's resources; every organization has a default one

Revision ID: 0009
Revises: 0008

Existing organizations get their default project here, and a key or sandbox
naming a project that does not exist (``projectId`` was a free-form UUID
until now) moves to its organization's default project.
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFAULT_NAME = "Default"


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("color", sa.String(length=7), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_projects_org_name"),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(
            "uq_projects_org_default",
            ["org_id"],
            unique=True,
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        )
    bind = op.get_bind()
    projects = sa.table(
        "projects",
        sa.column("id", sa.String),
        sa.column("org_id", sa.String),
        sa.column("name", sa.String),
        sa.column("is_default", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    org_ids = [row[0] for row in bind.execute(sa.text("SELECT id FROM organizations"))]
    if org_ids:
        op.bulk_insert(
            projects,
            [
                {
                    "id": str(uuid.uuid4()),
                    "org_id": org_id,
                    "name": DEFAULT_NAME,
                    "is_default": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for org_id in org_ids
            ],
        )
    for name in ("api_keys", "sandboxes"):
        grouped = sa.table(name, sa.column("org_id", sa.String), sa.column("project_id", sa.String))
        default = (
            sa.select(projects.c.id)
            .where(projects.c.org_id == grouped.c.org_id, projects.c.is_default.is_(True))
            .scalar_subquery()
        )
        of_its_org = sa.select(projects.c.id).where(projects.c.org_id == grouped.c.org_id)
        bind.execute(
            grouped.update()
            .where(grouped.c.project_id.is_not(None), grouped.c.project_id.not_in(of_its_org))
            .values(project_id=default)
        )


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index("uq_projects_org_default")
    op.drop_table("projects")

"""audit events form a hash chain: each carries the hash of the one before it

Revision ID: 0016
Revises: 0015

Adds each event's place in the chain (``seq``, unique), the previous event's
hash and its own, and the one-row chain head every append locks. Events
already stored are chained in the order they were written (time, then id);
the append-only triggers are lifted for that one backfill, in this
transaction, and are back before it commits.
"""

import sqlalchemy as sa
from alembic import op

from runtools.server.domain.audit_chain import GENESIS, event_hash, fields_of

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

APPEND_ONLY = "audit_events is append-only"

events = sa.table(
    "audit_events",
    sa.column("id", sa.String),
    sa.column("org_id", sa.String),
    sa.column("action", sa.String),
    sa.column("outcome", sa.String),
    sa.column("reason", sa.String),
    sa.column("actor_type", sa.String),
    sa.column("actor_id", sa.String),
    sa.column("target_type", sa.String),
    sa.column("target_id", sa.String),
    sa.column("ip", sa.String),
    sa.column("user_agent", sa.String),
    sa.column("request_id", sa.String),
    sa.column("details", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("seq", sa.BigInteger),
    sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
)


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.String(length=64), nullable=True))
    op.create_index("ux_audit_events_seq", "audit_events", ["seq"], unique=True)
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    seq, last = _chain_existing_events()
    op.execute(
        sa.text("INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, :seq, :hash)").bindparams(
            seq=seq, hash=last
        )
    )


def _chain_existing_events() -> tuple[int, str]:
    bind = op.get_bind()
    rows = bind.execute(sa.select(events).order_by(events.c.created_at, events.c.id)).all()
    if not rows:
        return 0, GENESIS
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
    previous = GENESIS
    for seq, row in enumerate(rows, start=1):
        fields = fields_of(row, seq=seq, prev_hash=previous)
        digest = event_hash(fields)
        bind.execute(
            events.update()
            .where(events.c.id == row.id)
            .values(seq=seq, prev_hash=previous, hash=digest)
        )
        previous = digest
    if postgres:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    else:
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )
    return len(rows), previous


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    op.drop_index("ux_audit_events_seq", table_name="audit_events")
    op.drop_column("audit_events", "hash")
    op.drop_column("audit_events", "prev_hash")
    op.drop_column("audit_events", "seq")

"""The audit record cannot be rewritten, even by someone holding the database credentials."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from runtools.server.runtime import Runtime
from runtools.server.store.models import AuditEvent
from support.tenants import Member


def _events(runtime: Runtime) -> list[tuple[str, str | None]]:
    with runtime.database.session() as session:
        rows = session.execute(select(AuditEvent.id, AuditEvent.action).order_by(AuditEvent.id))
        return [(row.id, row.action) for row in rows]


def test_audit_events_refuse_update_and_delete(admin: Member, runtime: Runtime) -> None:
    admin.post("/v1/api-keys", json={"name": "audited"})
    runtime.flush()
    before = _events(runtime)
    assert before, "creating a key writes an audit event"
    for statement in (
        update(AuditEvent).values(action="nothing.happened"),
        delete(AuditEvent),
    ):
        with runtime.database.session() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                session.execute(statement)
            session.rollback()
    assert _events(runtime) == before


def test_audit_events_still_take_inserts(admin: Member, runtime: Runtime) -> None:
    runtime.flush()
    with runtime.database.session() as session:
        count = session.scalar(select(func.count()).select_from(AuditEvent))
    admin.post("/v1/api-keys", json={"name": "audited"})
    runtime.flush()
    with runtime.database.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == (count or 0) + 1


def test_postgresql_refuses_truncate_too(runtime: Runtime) -> None:
    if runtime.database.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    with runtime.database.session() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text("TRUNCATE audit_events"))
        session.rollback()

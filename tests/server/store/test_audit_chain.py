"""The audit log's hash chain: every event follows the one before it, and tampering shows.

Tampering is done as someone holding the database's owner credentials would:
the append-only triggers lifted (dropped on SQLite, disabled on PostgreSQL),
then rows changed with plain SQL. The chain is then checked the way
``runtools admin audit verify`` checks it.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.audit_chain import GENESIS
from runtools.server.runtime import Runtime
from runtools.server.settings import Settings
from runtools.server.store import migrate
from runtools.server.store.database import Database
from runtools.server.store.models import AuditChainHead, AuditEvent
from runtools.server.store.repositories import audit
from support.tenants import Member


def _event(action: str, **details: object) -> AuditRecord:
    return AuditRecord(
        action=action,
        outcome="success",
        org_id="org_test",
        actor_type="operator",
        actor_id=None,
        context=RequestContext(ip="203.0.113.9", user_agent="tests", request_id="req_1"),
        details=dict(details),
    )


def _record(runtime: Runtime, count: int) -> None:
    for index in range(count):
        with runtime.database.session() as session:
            audit.record(
                session, _event("test.happened", n=index, tuple=(1, 2)), runtime.clock.now()
            )
            session.commit()


def _chain(runtime: Runtime) -> list[AuditEvent]:
    with runtime.database.session() as session:
        rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        session.expunge_all()
        return rows


def _unguarded(runtime: Runtime, statement: str, **params: object) -> None:
    """Run ``statement`` with the append-only triggers lifted, as a database owner could."""
    with runtime.database.engine.begin() as connection:
        if runtime.database.dialect == "postgresql":
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            connection.execute(text(statement), params)
            connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
            connection.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
            connection.execute(text(statement), params)


def test_what_the_service_audits_forms_one_chain_that_verifies(
    admin: Member, runtime: Runtime
) -> None:
    key = admin.post("/v1/api-keys", json={"name": "chained"}).json()["data"]
    admin.patch(f"/v1/api-keys/{key['id']}", json={"name": "renamed"})
    admin.http.get("/v1/me", headers={"X-API-Key": "rt_live_" + "Z" * 38})  # a queued auth.failed
    admin.delete(f"/v1/api-keys/{key['id']}")
    runtime.flush()
    rows = _chain(runtime)
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))
    assert {"api_key.created", "api_key.updated", "api_key.revoked", "auth.failed"} <= {
        row.action for row in rows
    }
    report = runtime.audit_chain.verify()
    assert report.broken is None
    assert (report.events, report.head_seq, report.head_hash) == (
        len(rows),
        len(rows),
        rows[-1].hash,
    )


@pytest.mark.parametrize("column", ["details", "action", "ip", "created_at"])
def test_an_event_altered_in_the_table_is_named(runtime: Runtime, column: str) -> None:
    _record(runtime, 5)
    victim = _chain(runtime)[2]
    value = {
        "details": '{"n": 99, "tuple": [1, 2]}',
        "action": "nothing.happened",
        "ip": "198.51.100.1",
        "created_at": datetime(2020, 1, 1, tzinfo=UTC),
    }[column]
    _unguarded(
        runtime,
        f"UPDATE audit_events SET {column} = :value WHERE id = :id",
        value=value,
        id=victim.id,
    )
    broken = runtime.audit_chain.verify().broken
    assert broken is not None
    assert (broken.event_id, broken.seq) == (victim.id, 3)
    assert "altered" in broken.problem


def test_an_event_rehashed_after_altering_breaks_the_link_to_the_next(runtime: Runtime) -> None:
    from runtools.server.domain.audit_chain import event_hash, fields_of

    _record(runtime, 4)
    rows = _chain(runtime)
    victim = rows[1]
    victim.action = "nothing.happened"
    forged = event_hash(fields_of(victim, seq=2, prev_hash=str(victim.prev_hash)))
    _unguarded(
        runtime,
        "UPDATE audit_events SET action = 'nothing.happened', hash = :hash WHERE id = :id",
        hash=forged,
        id=victim.id,
    )
    broken = runtime.audit_chain.verify().broken
    assert broken is not None
    assert (broken.event_id, broken.seq) == (rows[2].id, 3)
    assert "prevHash" in broken.problem


def test_an_event_removed_from_the_middle_or_the_end_is_noticed(runtime: Runtime) -> None:
    _record(runtime, 5)
    rows = _chain(runtime)
    _unguarded(runtime, "DELETE FROM audit_events WHERE id = :id", id=rows[1].id)
    broken = runtime.audit_chain.verify().broken
    assert broken is not None
    assert (broken.event_id, broken.seq) == (rows[2].id, 3)
    assert "removed" in broken.problem


def test_the_newest_events_removed_disagree_with_the_head(runtime: Runtime) -> None:
    _record(runtime, 3)
    rows = _chain(runtime)
    _unguarded(runtime, "DELETE FROM audit_events WHERE id = :id", id=rows[-1].id)
    broken = runtime.audit_chain.verify().broken
    assert broken is not None
    assert broken.event_id is None
    assert "head is at seq 3" in broken.problem


def test_an_event_slipped_in_outside_the_chain_is_named(runtime: Runtime) -> None:
    _record(runtime, 2)
    with runtime.database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events (id, action, outcome, actor_type, details, created_at)"
                " VALUES ('evt_forged', 'api_key.created', 'success', 'operator', '{}', :now)"
            ),
            {"now": datetime.now(UTC)},
        )
    broken = runtime.audit_chain.verify().broken
    assert broken is not None
    assert broken.event_id == "evt_forged"


def test_concurrent_writers_keep_one_chain(runtime: Runtime) -> None:
    """Threads appending at once, each in its own transactions, and the batch writer too:
    on PostgreSQL these are concurrent transactions on a pool of connections."""
    writers, per_writer = 6, 15
    start = threading.Barrier(writers + 1)
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            start.wait()
            for index in range(per_writer):
                with runtime.database.session() as session:
                    now = runtime.clock.now()
                    audit.record(session, _event("test.concurrent", worker=worker, n=index), now)
                    audit.record(session, _event("test.second", worker=worker, n=index), now)
                    session.commit()
        except BaseException as exc:  # reported below
            failures.append(exc)

    def queue_failures() -> None:
        start.wait()
        for index in range(per_writer):
            runtime.audit.enqueue(_event("auth.failed", n=index))
            runtime.audit.flush()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    threads.append(threading.Thread(target=queue_failures))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    runtime.flush()
    rows = _chain(runtime)
    assert len(rows) == writers * per_writer * 2 + per_writer
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    assert len({row.prev_hash for row in rows}) == len(rows)  # no two events follow one
    report = runtime.audit_chain.verify()
    assert report.broken is None
    assert report.events == len(rows)


def test_upgrading_chains_the_events_already_stored_and_keeps_them_append_only(
    tmp_path: Path, database_url: str | None
) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.exc import DBAPIError

    settings = Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)
    database = Database(settings)
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    try:
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0015")
        base = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        with database.engine.begin() as connection:
            for index, event_id in enumerate(("evt_c", "evt_a", "evt_b")):
                connection.execute(
                    text(
                        "INSERT INTO audit_events (id, org_id, action, outcome, actor_type,"
                        " details, created_at) VALUES (:id, 'org_a', 'api_key.created',"
                        " 'success', 'operator', :details, :at)"
                    ),
                    {"id": event_id, "details": '{"n": 1}', "at": base + timedelta(seconds=index)},
                )
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with database.session() as session:
            rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
            head = session.get_one(AuditChainHead, 1)
            assert [(row.id, row.seq) for row in rows] == [("evt_c", 1), ("evt_a", 2), ("evt_b", 3)]
            assert (head.seq, head.hash) == (3, rows[-1].hash)
        from runtools.server.domain.clock import SystemClock
        from runtools.server.services.audit_chain import AuditChainService

        assert AuditChainService(database, SystemClock()).verify().broken is None
        with (
            database.engine.connect() as connection,
            pytest.raises(DBAPIError, match="append-only"),
        ):
            connection.execute(text("UPDATE audit_events SET action = 'x'"))
    finally:
        database.engine.dispose()

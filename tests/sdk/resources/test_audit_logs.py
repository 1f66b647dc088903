"""``rt.audit_logs`` against a server speaking the wire contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from runtools import AsyncRunTools, AuditLogEntry, RunTools

from ..fake_server import FakeRunTools


def test_list_reads_every_entry(client: RunTools, fake: FakeRunTools) -> None:
    fake.seed_audit(7)
    entries = list(client.audit_logs.list(limit=3))
    assert [e.id for e in entries] == [f"aud_{i:04d}" for i in range(7)]
    first = entries[0]
    assert isinstance(first, AuditLogEntry)
    assert first.actor_type == "user"
    assert first.target_id == "key_0"
    assert first.created_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert first.details == {"n": 0}


def test_list_filters_are_sent_as_wire_params(client: RunTools, fake: FakeRunTools) -> None:
    fake.seed_audit(4)
    since = datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    page = client.audit_logs.list(
        action="api_key.revoke", since=since, until="2024-02-01T00:00:00Z", limit=10
    ).first_page()
    assert {e.action for e in page.data} == {"api_key.revoke"}
    assert fake.requests[-1].query == {
        "action": "api_key.revoke",
        "since": "2024-01-01T00:00:00Z",
        "until": "2024-02-01T00:00:00Z",
        "limit": "10",
    }


def test_naive_datetimes_are_taken_as_utc(client: RunTools, fake: FakeRunTools) -> None:
    client.audit_logs.list(since=datetime(2024, 5, 1, 12, 30)).first_page()
    assert fake.requests[-1].query["since"] == "2024-05-01T12:30:00Z"


@pytest.mark.anyio
async def test_async_list(async_client: AsyncRunTools, fake: FakeRunTools) -> None:
    fake.seed_audit(5)
    ids = [e.id async for e in async_client.audit_logs.list(limit=2)]
    assert len(ids) == 5

"""API key rows: a use noted late never moves ``last_used_at`` back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from runtools.server.runtime import Runtime
from runtools.server.store.models import ApiKey
from runtools.server.store.repositories import api_keys
from support.tenants import Member

NOON = datetime(2100, 3, 1, 12, 0, tzinfo=UTC)  # after any use the fixtures made


def _last_used(runtime: Runtime, key_id: str) -> datetime | None:
    with runtime.database.session() as session:
        key = session.get_one(ApiKey, key_id)
        return key.last_used_at.replace(tzinfo=UTC) if key.last_used_at else None


def test_a_later_use_moves_last_used_at_forward_and_an_earlier_one_never_back(
    runtime: Runtime, admin: Member
) -> None:
    runtime.flush()
    for used_at in (NOON, NOON - timedelta(minutes=5), NOON + timedelta(minutes=1)):
        with runtime.database.session() as session:
            api_keys.note_uses(session, {admin.key_id: used_at})
            session.commit()
        latest = max(NOON, used_at)
        assert _last_used(runtime, admin.key_id) == latest


def test_usage_from_many_nodes_adds_up_in_one_row_per_key_and_day(
    runtime: Runtime, admin: Member
) -> None:
    day = NOON.date()
    # Four nodes flushing at once, each with its own session: one row, every count kept.

    def flush(n: int) -> None:
        with runtime.database.session() as session:
            api_keys.add_usage(session, day, {admin.key_id: (n, 1, 0)})
            session.commit()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(flush, [1, 2, 3, 4]))
    with runtime.database.session() as session:
        api_keys.add_usage(session, day + timedelta(days=1), {admin.key_id: (5, 0, 2)})
        session.commit()
        rows = api_keys.usage_of(session, admin.key_id, day)
        assert [(r.day, r.requests, r.invalid, r.rate_limited) for r in rows] == [
            (day, 10, 4, 0),
            (day + timedelta(days=1), 5, 0, 2),
        ]
        assert api_keys.usage_of(session, admin.key_id, day + timedelta(days=2)) == []

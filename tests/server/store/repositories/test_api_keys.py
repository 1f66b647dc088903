"""API key rows: a use noted late never moves ``last_used_at`` back."""

from __future__ import annotations

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

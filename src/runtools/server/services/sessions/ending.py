"""Ending a session: marked revoked with its reason, and announced to every node.

A session ends when its person revokes it, changes password, switches
organization, or when a used refresh token comes back (theft). Each of
those decides *that* it ends, and audits why; this module holds what every
ending shares. The announcement goes out after the commit, so a node that
hears it and looks finds the session over; its access tokens then fail on
the next request rather than when they expire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock
from runtools.server.domain.events import CredentialEvent, EventBus, EventKind
from runtools.server.domain.principal import Principal
from runtools.server.store.models import UserSession
from runtools.server.store.repositories import audit

if TYPE_CHECKING:
    from runtools.server.store.database import Session


def revoke(
    session: Session,
    clock: Clock,
    row: UserSession,
    reason: str,
    caller: Principal | None,
    context: RequestContext,
) -> None:
    """Revoke ``row`` in the caller's transaction and audit it; nothing if it already ended."""
    if row.revoked_at is not None:
        return
    row.revoked_at = clock.now()
    row.revoke_reason = reason
    audit.record(
        session,
        AuditRecord(
            action="session.revoked",
            outcome="success",
            reason=reason,
            org_id=row.org_id,
            actor_type=caller.credential_type if caller else "system",
            actor_id=caller.credential_id if caller else None,
            target_type="session",
            target_id=row.id,
            context=context,
        ),
        clock.now(),
    )


def announce(bus: EventBus, row: UserSession) -> None:
    """Tell every node the session is over (call once it is committed)."""
    bus.publish(
        CredentialEvent(
            EventKind.SESSION_REVOKED, row.org_id, user_id=row.user_id, session_id=row.id
        )
    )

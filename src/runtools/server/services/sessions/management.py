"""A person's own sessions: list them, revoke one or all others, switch organization.

Changing one's password is here too, since what it changes for the person
is their sessions: every other one ends. Switching organization ends the
session and starts its successor in one transaction, guarded by a
conditional update (``sessions.end_if_live``): of two switches at once, one
wins and the other finds the session over, so a session never has two
successors. Another person's session is a 404, never a 403.

Signing in and the refresh-token chain are not here (``sign_in``,
``refresh``); neither is making tokens (``issuing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import InvalidRequest, NotFound, Unauthorized
from runtools.server.domain.events import EventBus
from runtools.server.domain.paging import Page
from runtools.server.domain.principal import Principal
from runtools.server.services.passwords import hash_password, password_matches
from runtools.server.services.sessions import ending
from runtools.server.services.sessions.issuing import SessionIssuer, TokenPair, choose_org
from runtools.server.store.database import Database
from runtools.server.store.repositories import audit, organizations, sessions


@dataclass(frozen=True)
class SessionView:
    id: str
    client_name: str
    org_id: str
    org_name: str
    ip: str | None
    user_agent: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool


class SessionManagement:
    def __init__(
        self, database: Database, clock: Clock, bus: EventBus, issuer: SessionIssuer
    ) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus
        self._issuer = issuer

    def list_sessions(
        self, caller: Principal, *, limit: int, cursor: str | None
    ) -> Page[SessionView]:
        now = self._clock.now()
        with self._database.session() as session:
            page = sessions.live_of_user(session, caller.user_id, now, limit=limit, cursor=cursor)
            names = organizations.org_names(session, {row.org_id for row in page.items})
            views = [
                SessionView(
                    id=row.id,
                    client_name=row.client_name,
                    org_id=row.org_id,
                    org_name=names.get(row.org_id, ""),
                    ip=row.ip,
                    user_agent=row.user_agent,
                    created_at=as_utc(row.created_at),
                    last_used_at=as_utc(row.last_used_at),
                    expires_at=as_utc(row.expires_at),
                    current=row.id == caller.credential_id,
                )
                for row in page.items
            ]
        return Page(views, page.next_cursor)

    def revoke(
        self, caller: Principal, session_id: str, context: RequestContext, *, reason: str
    ) -> None:
        with self._database.session() as session:
            row = sessions.get(session, session_id)
            if row is None or row.user_id != caller.user_id:
                raise NotFound(f"No session {session_id!r}")
            ending.revoke(session, self._clock, row, reason, caller, context)
            session.commit()
        ending.announce(self._bus, row)

    def revoke_others(self, caller: Principal, context: RequestContext) -> int:
        with self._database.session() as session:
            rows = sessions.unrevoked_of_user(
                session, caller.user_id, except_id=caller.credential_id
            )
            for row in rows:
                ending.revoke(session, self._clock, row, "revoked_by_user", caller, context)
            session.commit()
        for row in rows:
            ending.announce(self._bus, row)
        return len(rows)

    def switch_org(self, caller: Principal, org_name: str, context: RequestContext) -> TokenPair:
        return self.switch_org_by_session(caller.credential_id, org_name, context)

    def switch_org_by_session(
        self, session_id: str, org_name: str, context: RequestContext
    ) -> TokenPair:
        """End this session and start one in another organization of the same user."""
        with self._database.session() as session:
            old = sessions.get_one(session, session_id)
            user = organizations.user(session, old.user_id)
            org, role = choose_org(session, user, org_name)
            # Ended only if still live, in this transaction: of two switches at once,
            # one wins and the other finds the session over (never two successors).
            if not sessions.end_if_live(session, session_id, self._clock.now(), "switched_org"):
                raise Unauthorized()
            pair = self._issuer.start(
                session,
                user,
                org,
                role,
                old.client_name,
                context,
                audited_as="session.switched_org",
            )
            session.commit()
        ending.announce(self._bus, old)
        return pair

    def change_password(
        self, caller: Principal, current: str, new: str, context: RequestContext
    ) -> int:
        """Set a new password; every other session of the user ends."""
        with self._database.session() as session:
            user = organizations.user(session, caller.user_id)
            if not password_matches(user.password_hash, current):
                raise InvalidRequest("The current password is not correct")
            if current == new:
                raise InvalidRequest("The new password must differ from the current one")
            user.password_hash = hash_password(new)
            audit.record(
                session,
                AuditRecord(
                    action="user.password_changed",
                    outcome="success",
                    org_id=caller.org_id,
                    actor_type="user",
                    actor_id=user.id,
                    target_type="user",
                    target_id=user.id,
                    context=context,
                ),
                self._clock.now(),
            )
            session.commit()
        return self.revoke_others(caller, context)

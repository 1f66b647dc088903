"""The refresh-token chain: single-use, rotating refresh tokens with reuse detection.

Each refresh uses up the token presented and hands out its successor. The
successor is derived from the token (an HMAC under a service secret), so
two clients racing with the same token within the grace period both get
the same successor instead of one of them being taken for a thief. A used
token presented after the grace, or once the successor is itself used, is
treated as theft (RFC 9700 §4.14.2): the whole session is revoked, audited
and announced. Which of several concurrent refreshes uses the token is
decided by one conditional update (``sessions.claim_refresh_token``).

Starting sessions, and ending them at a person's request, are not here
(``sign_in``, ``management``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import Unauthorized
from runtools.server.domain.events import EventBus
from runtools.server.domain.tokens import digest, looks_like_refresh_token, successor_refresh_token
from runtools.server.services.sessions import ending
from runtools.server.services.sessions.issuing import SessionIssuer, TokenPair
from runtools.server.services.sessions.management import SessionManagement
from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.models import UserSession
from runtools.server.store.repositories import audit, organizations, sessions
from runtools.server.store.repositories.service_secrets import service_secret


class TokenRefresh:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        bus: EventBus,
        issuer: SessionIssuer,
        settings: Settings,
        management: SessionManagement,
    ) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus
        self._issuer = issuer
        self._settings = settings
        self._management = management
        self._successor_key = service_secret(database, clock, "refresh_successor")

    def refresh(self, token: str, org_name: str | None, context: RequestContext) -> TokenPair:
        """The next token pair for a refresh token; in ``org_name``'s organization if named."""
        if not looks_like_refresh_token(token):
            raise Unauthorized()
        now = self._clock.now()
        with self._database.session() as session:
            stored = sessions.refresh_token(session, digest(token))
            if stored is None:
                raise Unauthorized()
            row = sessions.get_one(session, stored.session_id)
            self._check_alive(row, now)
            if as_utc(stored.expires_at) <= now:
                raise Unauthorized()
            claimed = sessions.claim_refresh_token(session, stored.id, now)
            successor = successor_refresh_token(token, self._successor_key)
            if not claimed:
                session.rollback()
                return self._replay_or_revoke(token, successor, context)
            row.last_used_at = now
            self._issuer.add_refresh_token(session, row, successor, now)
            user = organizations.user(session, row.user_id)
            org = organizations.organization(session, row.org_id)
            role = organizations.role_in(session, org.id, user.id)
            if role is None:
                raise Unauthorized()
            pair = self._issuer.pair(row, org, user, role, successor)
            session.commit()
        if org_name and org_name.strip() != pair.org_name:
            return self._management.switch_org_by_session(pair.session_id, org_name, context)
        return pair

    def _replay_or_revoke(self, token: str, successor: str, context: RequestContext) -> TokenPair:
        """A used refresh token again: a racing twin within the grace, else theft."""
        now = self._clock.now()
        grace = timedelta(seconds=self._settings.refresh_reuse_grace_seconds)
        with self._database.session() as session:
            stored = sessions.refresh_token(session, digest(token))
            assert stored is not None
            assert stored.used_at is not None
            row = sessions.get_one(session, stored.session_id)
            next_token = sessions.refresh_token(session, digest(successor))
            racing = (
                as_utc(stored.used_at) + grace > now
                and next_token is not None
                and next_token.used_at is None
                and row.revoked_at is None
            )
            if racing:
                user = organizations.user(session, row.user_id)
                org = organizations.organization(session, row.org_id)
                role = organizations.role_in(session, org.id, user.id)
                if role is None:
                    raise Unauthorized()
                return self._issuer.pair(row, org, user, role, successor)
            if row.revoked_at is None:
                row.revoked_at = now
                row.revoke_reason = "refresh_token_reused"
            audit.record(
                session,
                AuditRecord(
                    action="session.refresh_reuse_detected",
                    outcome="failure",
                    reason="refresh_token_reused",
                    org_id=row.org_id,
                    actor_type="user",
                    actor_id=row.user_id,
                    target_type="session",
                    target_id=row.id,
                    context=context,
                ),
                now,
            )
            session.commit()
        ending.announce(self._bus, row)
        raise Unauthorized()

    def _check_alive(self, row: UserSession, now: datetime) -> None:
        if row.revoked_at is not None or as_utc(row.expires_at) <= now:
            raise Unauthorized()
        idle = timedelta(hours=self._settings.session_idle_ttl_hours)
        if as_utc(row.last_used_at) + idle <= now:
            raise Unauthorized()

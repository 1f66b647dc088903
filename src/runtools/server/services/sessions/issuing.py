"""Issuing: a new session with its first refresh token, its successors, the access token.

Signing in, refreshing and switching organization each decide *whether* a
session starts or a token is handed out; this module only makes what they
hand out, in the caller's unit of work. It must not check passwords, count
guesses or judge a used refresh token: those rules belong to the modules
that call it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import Forbidden
from runtools.server.domain.roles import effective_scopes
from runtools.server.domain.scopes import ALL
from runtools.server.domain.tokens import TokenSigner, digest, new_refresh_token
from runtools.server.settings import Settings
from runtools.server.store.models import Organization, User, UserSession
from runtools.server.store.repositories import audit, organizations, sessions

if TYPE_CHECKING:
    from runtools.server.store.database import Session


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    org_id: str
    org_name: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


def choose_org(session: Session, user: User, org_name: str | None) -> tuple[Organization, str]:
    """The organization a new session of ``user`` is in, and the user's role there.

    The one named, else the user's earliest membership; Forbidden when the
    user is not a member of it (or of any).
    """
    found = organizations.first_membership(session, user.id, org_name)
    if found is None:
        if org_name:
            raise Forbidden(f"You are not a member of {org_name!r}")
        raise Forbidden("You are not a member of any organization")
    return found


class SessionIssuer:
    """Makes sessions and their tokens; signs access tokens with the service's signer."""

    def __init__(self, clock: Clock, signer: TokenSigner, settings: Settings) -> None:
        self._clock = clock
        self._signer = signer
        self._settings = settings

    def start(
        self,
        session: Session,
        user: User,
        org: Organization,
        role: str,
        client: str,
        context: RequestContext,
        *,
        audited_as: str,
    ) -> TokenPair:
        """A new session of ``user`` in ``org``, its first tokens, and an audit event of why."""
        now = self._clock.now()
        row = sessions.create(
            session,
            user_id=user.id,
            org_id=org.id,
            client_name=client[:100] or "unknown",
            ip=context.ip,
            user_agent=(context.user_agent or "")[:256] or None,
            now=now,
            expires_at=now + timedelta(hours=self._settings.session_absolute_ttl_hours),
        )
        refresh = new_refresh_token()
        self.add_refresh_token(session, row, refresh, now)
        pair = self.pair(row, org, user, role, refresh)
        audit.record(
            session,
            AuditRecord(
                action=audited_as,
                outcome="success",
                org_id=org.id,
                actor_type="user",
                actor_id=user.id,
                target_type="session",
                target_id=row.id,
                context=context,
            ),
            self._clock.now(),
        )
        return pair

    def add_refresh_token(
        self, session: Session, row: UserSession, token: str, now: datetime
    ) -> None:
        """Store ``token`` as the next refresh token; it lapses when idle or as the session ends."""
        idle_end = now + timedelta(hours=self._settings.session_idle_ttl_hours)
        sessions.add_refresh_token(
            session,
            session_id=row.id,
            token_hash=digest(token),
            now=now,
            expires_at=min(idle_end, as_utc(row.expires_at)),
        )

    def pair(
        self, row: UserSession, org: Organization, user: User, role: str, refresh: str
    ) -> TokenPair:
        """A fresh access token for the session, paired with the refresh token given."""
        now = int(self._clock.now().timestamp())
        ttl = self._settings.access_token_ttl_seconds
        token = self._signer.sign(
            {
                "iss": self._settings.jwt_issuer,
                "aud": self._settings.jwt_audience,
                "sub": user.id,
                "org": org.id,
                "role": role,
                # What the session may use (``*`` capped by the role), RFC 9068's claim: a
                # service verifying the token offline (runtools.verify) reads it from here.
                "scope": " ".join(effective_scopes([ALL], role)),
                "sid": row.id,
                "iat": now,
                "nbf": now,
                "exp": now + ttl,
                "jti": str(uuid.uuid4()),
            }
        )
        return TokenPair(token, refresh, ttl, row.id, org.id, org.name)

"""Sessions: sign-in, token pairs, refresh with reuse detection, sign-out.

A session is one person signed in to one organization from one client. It
holds a chain of single-use refresh tokens; presenting a used one after the
grace period is treated as theft (RFC 9700 §4.14.2): the whole session is
revoked and the event audited. Access tokens are short-lived JWTs naming the
session, and sessions are checked on every cache fill, so a revoked session's
access tokens fail on the next request rather than when they expire.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    SignInFailed,
    Unauthorized,
)
from runtools.server.domain.events import CredentialEvent, EventBus, EventKind
from runtools.server.domain.ids import new_id
from runtools.server.domain.principal import Principal
from runtools.server.domain.tokens import (
    TokenSigner,
    digest,
    looks_like_refresh_token,
    new_refresh_token,
    successor_refresh_token,
)
from runtools.server.services.passwords import dummy_hash, hash_password, password_matches
from runtools.server.services.throttle import Throttle
from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.models import (
    Membership,
    Organization,
    RefreshToken,
    User,
    UserSession,
)
from runtools.server.store.pagination import Page, paginate
from runtools.server.store.repositories import audit, organizations
from runtools.server.store.repositories.service_secrets import service_secret


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    org_id: str
    org_name: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


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


class SessionService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        bus: EventBus,
        signer: TokenSigner,
        settings: Settings,
    ) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus
        self._signer = signer
        self._settings = settings
        dummy_hash()  # made now, not on the first unknown email
        self._refresh_key = self._service_secret("refresh_successor")
        # Throttled subjects are HMACs under a key of the service's own.
        throttle = partial(
            Throttle,
            database=database,
            clock=clock,
            key=self._service_secret("throttle_subjects"),
            window=settings.login_failure_window_seconds,
        )
        self.account_throttle = throttle(
            name="sign-in:account", limit=settings.login_max_failures_per_account
        )
        self.ip_throttle = throttle(name="sign-in:ip", limit=settings.login_max_failures_per_ip)

    # -- signing in ------------------------------------------------------------

    def login(
        self, email: str, password: str, org_name: str | None, client: str, context: RequestContext
    ) -> TokenPair:
        account = email.strip().lower()
        throttled = "Too many failed sign-ins"
        # Counted before the password is checked, so guesses in flight count too.
        self.account_throttle.admit(f"account:{account}", throttled)
        guess = self.ip_throttle.admit(f"ip:{context.ip}", throttled) if context.ip else None
        # No connection is held while Argon2 runs: a burst of sign-ins must not
        # take the pool every other request needs.
        with self._database.session() as session:
            user = session.scalar(select(User).where(User.email == account))
            user_id = user.id if user is not None else None
            stored = (user.password_hash or None) if user is not None else None
        if not password_matches(stored, password):
            with self._database.session() as session:
                self._sign_in_failed(session, user_id, context)
            raise SignInFailed()
        self.account_throttle.reset(f"account:{account}")
        if guess is not None:
            self.ip_throttle.succeeded(guess)
        with self._database.session() as session:
            user = session.get_one(User, user_id)
            org, role = self._choose_org(session, user, org_name)
            pair = self._start(session, user, org, role, client, context)
            self._audit(session, "session.created", org.id, user.id, pair.session_id, context)
            session.commit()
        return pair

    def signup(
        self,
        email: str,
        password: str,
        org_name: str,
        display_name: str | None,
        client: str,
        context: RequestContext,
    ) -> TokenPair:
        if self._settings.signup != "open":
            raise Forbidden("Sign-up is closed on this server; ask an operator for an account")
        password_hash = hash_password(password)
        with self._database.session() as session:
            user = organizations.create_user(
                session,
                self._clock,
                email,
                display_name=display_name,
                password_hash=password_hash,
            )
            org = organizations.create_org(session, self._clock, org_name)
            organizations.add_member(session, self._clock, org, user, "admin")
            pair = self._start(session, user, org, "admin", client, context)
            self._audit(session, "user.signed_up", org.id, user.id, pair.session_id, context)
            session.commit()
        return pair

    def start_for(
        self, user_id: str, org_id: str, client: str, context: RequestContext
    ) -> TokenPair:
        """A session for a sign-in approved elsewhere (the device grant)."""
        with self._database.session() as session:
            user = session.get_one(User, user_id)
            org = session.get_one(Organization, org_id)
            role = organizations.role_in(session, org_id, user_id)
            if role is None:
                raise Unauthorized()
            pair = self._start(session, user, org, role, client, context)
            self._audit(session, "session.created", org.id, user.id, pair.session_id, context)
            session.commit()
        return pair

    def _sign_in_failed(
        self, session: Session, user_id: str | None, context: RequestContext
    ) -> None:
        org_id = None
        if user_id is not None:
            org_id = session.scalar(
                select(Membership.org_id).where(Membership.user_id == user_id).limit(1)
            )
        audit.record(
            session,
            AuditRecord(
                action="auth.sign_in_failed",
                outcome="failure",
                reason="wrong_password" if user_id else "unknown_email",
                org_id=org_id,
                actor_type="user",
                actor_id=user_id,
                context=context,
            ),
            self._clock.now(),
        )
        session.commit()

    def _choose_org(
        self, session: Session, user: User, org_name: str | None
    ) -> tuple[Organization, str]:
        query = (
            select(Organization, Membership.role)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.user_id == user.id)
        )
        if org_name:
            query = query.where(Organization.name == org_name.strip())
        row = session.execute(query.order_by(Membership.created_at).limit(1)).first()
        if row is None:
            if org_name:
                raise Forbidden(f"You are not a member of {org_name!r}")
            raise Forbidden("You are not a member of any organization")
        return row[0], row[1]

    # -- tokens ----------------------------------------------------------------

    def _start(
        self,
        session: Session,
        user: User,
        org: Organization,
        role: str,
        client: str,
        context: RequestContext,
    ) -> TokenPair:
        now = self._clock.now()
        row = UserSession(
            id=new_id("ses"),
            user_id=user.id,
            org_id=org.id,
            client_name=client[:100] or "unknown",
            ip=context.ip,
            user_agent=(context.user_agent or "")[:256] or None,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(hours=self._settings.session_absolute_ttl_hours),
            revoked_at=None,
            revoke_reason=None,
        )
        session.add(row)
        session.flush()  # the session row must exist before its refresh token
        refresh = new_refresh_token()
        self._store_refresh(session, row, refresh, now)
        return self._pair(row, org, user, role, refresh)

    def _store_refresh(self, session: Session, row: UserSession, token: str, now: datetime) -> None:
        idle_end = now + timedelta(hours=self._settings.session_idle_ttl_hours)
        session.add(
            RefreshToken(
                id=new_id("rft"),
                session_id=row.id,
                token_hash=digest(token),
                created_at=now,
                expires_at=min(idle_end, as_utc(row.expires_at)),
                used_at=None,
            )
        )
        session.flush()

    def _pair(
        self, row: UserSession, org: Organization, user: User, role: str, refresh: str
    ) -> TokenPair:
        now = int(self._clock.now().timestamp())
        ttl = self._settings.access_token_ttl_seconds
        token = self._signer.sign(
            {
                "iss": self._settings.jwt_issuer,
                "aud": self._settings.jwt_audience,
                "sub": user.id,
                "org": org.id,
                "role": role,
                "sid": row.id,
                "iat": now,
                "nbf": now,
                "exp": now + ttl,
                "jti": str(uuid.uuid4()),
            }
        )
        return TokenPair(token, refresh, ttl, row.id, org.id, org.name)

    def refresh(self, token: str, org_name: str | None, context: RequestContext) -> TokenPair:
        if not looks_like_refresh_token(token):
            raise Unauthorized()
        now = self._clock.now()
        with self._database.session() as session:
            stored = session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == digest(token))
            )
            if stored is None:
                raise Unauthorized()
            row = session.get_one(UserSession, stored.session_id)
            self._check_alive(row, now)
            if as_utc(stored.expires_at) <= now:
                raise Unauthorized()
            claimed = cast(
                "CursorResult[Any]",
                session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.id == stored.id, RefreshToken.used_at.is_(None))
                    .values(used_at=now)
                ),
            ).rowcount
            successor = successor_refresh_token(token, self._refresh_key)
            if claimed != 1:
                session.rollback()
                return self._replay_or_revoke(token, successor, context)
            row.last_used_at = now
            self._store_refresh(session, row, successor, now)
            user = session.get_one(User, row.user_id)
            org = session.get_one(Organization, row.org_id)
            role = organizations.role_in(session, org.id, user.id)
            if role is None:
                raise Unauthorized()
            pair = self._pair(row, org, user, role, successor)
            session.commit()
        if org_name and org_name.strip() != pair.org_name:
            return self.switch_org_by_session(pair.session_id, org_name, context)
        return pair

    def _replay_or_revoke(self, token: str, successor: str, context: RequestContext) -> TokenPair:
        """A used refresh token again: a racing twin within the grace, else theft."""
        now = self._clock.now()
        grace = timedelta(seconds=self._settings.refresh_reuse_grace_seconds)
        with self._database.session() as session:
            stored = session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == digest(token))
            )
            assert stored is not None
            assert stored.used_at is not None
            row = session.get_one(UserSession, stored.session_id)
            next_token = session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == digest(successor))
            )
            racing = (
                as_utc(stored.used_at) + grace > now
                and next_token is not None
                and next_token.used_at is None
                and row.revoked_at is None
            )
            if racing:
                user = session.get_one(User, row.user_id)
                org = session.get_one(Organization, row.org_id)
                role = organizations.role_in(session, org.id, user.id)
                if role is None:
                    raise Unauthorized()
                return self._pair(row, org, user, role, successor)
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
        self._publish_revoked(row)
        raise Unauthorized()

    def _refresh_row(self, session: Session, token: str) -> RefreshToken | None:
        return session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(token)))

    def _check_alive(self, row: UserSession, now: datetime) -> None:
        if row.revoked_at is not None or as_utc(row.expires_at) <= now:
            raise Unauthorized()
        idle = timedelta(hours=self._settings.session_idle_ttl_hours)
        if as_utc(row.last_used_at) + idle <= now:
            raise Unauthorized()

    # -- managing sessions -------------------------------------------------------

    def list_sessions(
        self, caller: Principal, *, limit: int, cursor: str | None
    ) -> Page[SessionView]:
        now = self._clock.now()
        with self._database.session() as session:
            query = select(UserSession).where(
                UserSession.user_id == caller.user_id,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > now,
            )
            page = paginate(session, query, UserSession.id, limit=limit, cursor=cursor)
            org_ids = {row.org_id for row in page.items}
            names = {
                org_id: name
                for org_id, name in session.execute(
                    select(Organization.id, Organization.name).where(Organization.id.in_(org_ids))
                )
            }
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
            row = session.get(UserSession, session_id)
            if row is None or row.user_id != caller.user_id:
                raise NotFound(f"No session {session_id!r}")
            self._revoke_row(session, row, reason, caller, context)
            session.commit()
        self._publish_revoked(row)

    def revoke_others(self, caller: Principal, context: RequestContext) -> int:
        with self._database.session() as session:
            rows = list(
                session.scalars(
                    select(UserSession).where(
                        UserSession.user_id == caller.user_id,
                        UserSession.revoked_at.is_(None),
                        UserSession.id != caller.credential_id,
                    )
                )
            )
            for row in rows:
                self._revoke_row(session, row, "revoked_by_user", caller, context)
            session.commit()
        for row in rows:
            self._publish_revoked(row)
        return len(rows)

    def switch_org(self, caller: Principal, org_name: str, context: RequestContext) -> TokenPair:
        return self.switch_org_by_session(caller.credential_id, org_name, context)

    def switch_org_by_session(
        self, session_id: str, org_name: str, context: RequestContext
    ) -> TokenPair:
        """End this session and start one in another organization of the same user."""
        with self._database.session() as session:
            old = session.get_one(UserSession, session_id)
            user = session.get_one(User, old.user_id)
            org, role = self._choose_org(session, user, org_name)
            # Ended only if still live, in this transaction: of two switches at once,
            # one wins and the other finds the session over (never two successors).
            ended = cast(
                "CursorResult[Any]",
                session.execute(
                    update(UserSession)
                    .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
                    .values(revoked_at=self._clock.now(), revoke_reason="switched_org")
                ),
            ).rowcount
            if ended != 1:
                raise Unauthorized()
            pair = self._start(session, user, org, role, old.client_name, context)
            self._audit(session, "session.switched_org", org.id, user.id, pair.session_id, context)
            session.commit()
        self._publish_revoked(old)
        return pair

    def change_password(
        self, caller: Principal, current: str, new: str, context: RequestContext
    ) -> int:
        """Set a new password; every other session of the user ends."""
        with self._database.session() as session:
            user = session.get_one(User, caller.user_id)
            if not password_matches(user.password_hash, current):
                raise InvalidRequest("The current password is not correct")
            if current == new:
                raise InvalidRequest("The new password must differ from the current one")
            user.password_hash = hash_password(new)
            self._audit(session, "user.password_changed", caller.org_id, user.id, None, context)
            session.commit()
        return self.revoke_others(caller, context)

    def _revoke_row(
        self,
        session: Session,
        row: UserSession,
        reason: str,
        caller: Principal | None,
        context: RequestContext,
    ) -> None:
        if row.revoked_at is not None:
            return
        row.revoked_at = self._clock.now()
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
            self._clock.now(),
        )

    def _publish_revoked(self, row: UserSession) -> None:
        self._bus.publish(
            CredentialEvent(
                EventKind.SESSION_REVOKED, row.org_id, user_id=row.user_id, session_id=row.id
            )
        )

    def _audit(
        self,
        session: Session,
        action: str,
        org_id: str,
        user_id: str,
        session_id: str | None,
        context: RequestContext,
    ) -> None:
        audit.record(
            session,
            AuditRecord(
                action=action,
                outcome="success",
                org_id=org_id,
                actor_type="user",
                actor_id=user_id,
                target_type="session" if session_id else "user",
                target_id=session_id or user_id,
                context=context,
            ),
            self._clock.now(),
        )

    def _service_secret(self, name: str) -> bytes:
        return service_secret(self._database, self._clock, name)

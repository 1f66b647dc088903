"""A browser's hold on a session: a signed reference, fresh access tokens, re-authentication.

The dashboard's cookie holds ``SESSION_ID.MAC`` (an HMAC under a service
secret), never a refresh token: the session row is the truth, so revoking
it (signing out, the sessions page, a password change) ends the browser's
hold at once. Each access token is minted from a live session, which is
checked as the refresh chain checks it (revoked, past its end, idle) and
its ``last_used_at`` touched.

Also here, since each is bound to one session by the same secret:
- the CSRF token of the session's forms (an HMAC of the session id);
- the re-authentication mark ("you confirmed your password", ten minutes);
- flashes: what a page shows once after a redirect (a new key's secret),
  stored sealed under a key derived from a one-time reference the browser
  holds, and deleted as it is read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from typing import Any

from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.tokens import digest
from runtools.server.services import response_seal
from runtools.server.services.sessions.issuing import SessionIssuer
from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.repositories import organizations, sessions, web_flashes
from runtools.server.store.repositories.service_secrets import service_secret

REAUTH_FOR = timedelta(minutes=10)
FLASH_FOR = timedelta(minutes=5)
# A session's last use is written at most this often from the dashboard.
_TOUCH_EVERY = timedelta(minutes=1)


class WebSessions:
    def __init__(
        self, database: Database, clock: Clock, issuer: SessionIssuer, settings: Settings
    ) -> None:
        self._database = database
        self._clock = clock
        self._issuer = issuer
        self._settings = settings
        self._key = service_secret(database, clock, "web_sessions")

    def _mac(self, *parts: str) -> str:
        message = "|".join(parts).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    # -- the session reference -------------------------------------------------

    def reference(self, session_id: str) -> str:
        """What the browser keeps: the session's id, signed."""
        return f"{session_id}.{self._mac('session', session_id)}"

    def session_of(self, reference: str) -> str | None:
        """The session id a reference names, if it is ours (not whether it is live)."""
        session_id, _, mac = reference.partition(".")
        if not session_id or not hmac.compare_digest(mac, self._mac("session", session_id)):
            return None
        return session_id

    def access_token(self, reference: str) -> tuple[str, int] | None:
        """A fresh access token (and its lifetime) for the live session named; None if over."""
        session_id = self.session_of(reference)
        if session_id is None:
            return None
        now = self._clock.now()
        idle = timedelta(hours=self._settings.session_idle_ttl_hours)
        with self._database.session() as session:
            row = sessions.get(session, session_id)
            if (
                row is None
                or row.revoked_at is not None
                or as_utc(row.expires_at) <= now
                or as_utc(row.last_used_at) + idle <= now
            ):
                return None
            user = organizations.user(session, row.user_id)
            org = organizations.organization(session, row.org_id)
            role = organizations.role_in(session, org.id, user.id)
            if role is None:
                return None
            if as_utc(row.last_used_at) + _TOUCH_EVERY <= now:
                row.last_used_at = now
                session.commit()
            pair = self._issuer.pair(row, org, user, role, "")
        return pair.access_token, pair.expires_in

    # -- CSRF and re-authentication --------------------------------------------

    def csrf_token(self, session_id: str) -> str:
        return self._mac("csrf", session_id)

    def csrf_ok(self, session_id: str, submitted: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session_id), submitted)

    def reauth_mark(self, session_id: str) -> tuple[str, int]:
        """Proof the session's person confirmed their password just now, and its lifetime."""
        until = int((self._clock.now() + REAUTH_FOR).timestamp())
        return f"{until}.{self._mac('reauth', session_id, str(until))}", int(
            REAUTH_FOR.total_seconds()
        )

    def reauthenticated(self, session_id: str, mark: str) -> bool:
        """Whether ``mark`` is this session's, and less than ten minutes old."""
        until, _, mac = mark.partition(".")
        if not until.isdigit() or not hmac.compare_digest(
            mac, self._mac("reauth", session_id, until)
        ):
            return False
        return self._clock.timestamp() < int(until)

    # -- flashes ---------------------------------------------------------------

    def put_flash(self, session_id: str, payload: dict[str, Any]) -> str:
        """Keep ``payload`` for the session's next page; the one-time reference to it."""
        reference = secrets.token_urlsafe(32)
        flash_id = digest(reference)
        sealed = response_seal.seal(reference, self._key, flash_id, json.dumps(payload).encode())
        now = self._clock.now()
        with self._database.session() as session:
            web_flashes.put(
                session,
                flash_id=flash_id,
                session_id=session_id,
                sealed=sealed,
                now=now,
                expires_at=now + FLASH_FOR,
            )
            session.commit()
        return reference

    def take_flash(self, session_id: str, reference: str) -> dict[str, Any] | None:
        """The payload kept under ``reference`` for this session, once; None ever after."""
        flash_id = digest(reference)
        with self._database.session() as session:
            sealed = web_flashes.take(session, flash_id, session_id, self._clock.now())
            session.commit()
        if sealed is None:
            return None
        try:
            opened = response_seal.unseal(reference, self._key, flash_id, sealed)
        except response_seal.SealBroken:
            return None
        payload: dict[str, Any] = json.loads(opened)
        return payload

"""OAuth 2.0 device authorization grant (RFC 8628): how the CLI signs in.

The CLI asks for a device code and shows the person a short user code; the
person, signed in elsewhere, approves it for their current organization;
the CLI, polling, receives tokens exactly once. Polling faster than the
interval earns ``slow_down`` (and a longer interval). Wrong user codes are
throttled per user and per address, a handful per code lifetime.

The rules of the grant live here; its queries are in
``store.repositories.devices``, and the session it ends in is started by
signing in (``services.sessions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound, OAuthError
from runtools.server.domain.principal import Principal
from runtools.server.domain.tokens import (
    digest,
    display_user_code,
    new_device_code,
    new_user_code,
    normalize_user_code,
)
from runtools.server.services.sessions.issuing import TokenPair
from runtools.server.services.sessions.sign_in import SignIn
from runtools.server.services.throttle import Throttle
from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.models import DeviceGrant
from runtools.server.store.repositories import audit, devices
from runtools.server.store.repositories.service_secrets import service_secret

if TYPE_CHECKING:
    from runtools.server.store.database import Session

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class PendingDevice:
    """What the approving person is shown about the device asking."""

    user_code: str
    client_id: str
    ip: str | None
    user_agent: str | None
    created_at: datetime
    expires_at: datetime


class DeviceService:
    def __init__(
        self, database: Database, clock: Clock, settings: Settings, sign_in: SignIn
    ) -> None:
        self._database = database
        self._clock = clock
        self._settings = settings
        self._sign_in = sign_in
        throttle = partial(
            Throttle,
            database=database,
            clock=clock,
            key=service_secret(database, clock, "throttle_subjects"),
            limit=settings.device_max_wrong_codes,
            window=settings.device_code_ttl_seconds,
        )
        self.user_throttle = throttle(name="device:user")
        self.ip_throttle = throttle(name="device:ip")

    def start(self, client_id: str, context: RequestContext) -> DeviceAuthorization:
        client_id = client_id.strip()
        if not 1 <= len(client_id) <= 100:
            raise OAuthError("invalid_request", "client_id is required (1-100 characters)")
        now = self._clock.now()
        device_code = new_device_code()
        with self._database.session() as session:
            user_code = self._unused_user_code(session, now)
            devices.create(
                session,
                device_code_hash=digest(device_code),
                user_code=user_code,
                client_id=client_id,
                ip=context.ip,
                user_agent=(context.user_agent or "")[:256] or None,
                now=now,
                expires_at=now + timedelta(seconds=self._settings.device_code_ttl_seconds),
                interval=self._settings.device_poll_interval_seconds,
            )
            session.commit()
        return DeviceAuthorization(
            device_code,
            display_user_code(user_code),
            self._settings.device_code_ttl_seconds,
            self._settings.device_poll_interval_seconds,
        )

    def _unused_user_code(self, session: Session, now: datetime) -> str:
        for _ in range(10):
            code = new_user_code()
            if not devices.user_code_in_use(session, code, now):
                return code
        raise Conflict("Could not allocate a user code; try again")

    # -- the device polls ------------------------------------------------------

    def poll(self, device_code: str, client_id: str, context: RequestContext) -> TokenPair:
        now = self._clock.now()
        with self._database.session() as session:
            grant = devices.by_device_code(session, digest(device_code))
            if grant is None or grant.client_id != client_id.strip():
                raise OAuthError("invalid_grant", "Unknown device code")
            if grant.status == "consumed":
                raise OAuthError("invalid_grant", "This device code was already used")
            if as_utc(grant.expires_at) <= now:
                raise OAuthError("expired_token", "The device code has expired; start again")
            if grant.status == "denied":
                raise OAuthError("access_denied", "The request was denied")
            last = grant.last_polled_at
            grant.last_polled_at = now
            if last is not None and (now - as_utc(last)).total_seconds() < grant.interval:
                grant.interval += SLOW_DOWN_STEP
                session.commit()
                raise OAuthError(
                    "slow_down", f"Polling too fast; wait {grant.interval} seconds between polls"
                )
            if grant.status == "pending":
                session.commit()
                raise OAuthError("authorization_pending", "Waiting for the user to approve")
            # Approved: issue tokens exactly once, though two polls may race here.
            user_id, org_id, client = grant.user_id, grant.org_id, grant.client_id
            if not devices.consume_if_approved(session, grant.id):
                session.rollback()
                raise OAuthError("invalid_grant", "This device code was already used")
            session.commit()
        assert user_id is not None
        assert org_id is not None
        return self._sign_in.start_for(user_id, org_id, client, context)

    # -- the person approves ----------------------------------------------------

    def describe(
        self, caller: Principal, typed_code: str, context: RequestContext
    ) -> PendingDevice:
        guesses = self._count_guess(caller, context)
        with self._database.session() as session:
            grant = self._find(session, typed_code)
            pending = PendingDevice(
                display_user_code(grant.user_code),
                grant.client_id,
                grant.ip,
                grant.user_agent,
                as_utc(grant.created_at),
                as_utc(grant.expires_at),
            )
        self._right_guess(guesses)
        return pending

    def decide(
        self, caller: Principal, typed_code: str, action: str, context: RequestContext
    ) -> PendingDevice:
        if action not in {"approve", "deny"}:
            raise InvalidRequest("action must be approve or deny")
        if caller.credential_type != "session":
            raise Forbidden("Approving a device sign-in requires a signed-in user, not an API key")
        guesses = self._count_guess(caller, context)
        with self._database.session() as session:
            grant = self._find(session, typed_code)
            grant.status = "approved" if action == "approve" else "denied"
            grant.user_id = caller.user_id
            grant.org_id = caller.org_id
            audit.record(
                session,
                AuditRecord(
                    action=f"device.{'approved' if action == 'approve' else 'denied'}",
                    outcome="success",
                    org_id=caller.org_id,
                    actor_type=caller.credential_type,
                    actor_id=caller.credential_id,
                    target_type="device_grant",
                    target_id=grant.id,
                    context=context,
                    details={"clientId": grant.client_id, "deviceIp": grant.ip},
                ),
                self._clock.now(),
            )
            session.commit()
            pending = PendingDevice(
                display_user_code(grant.user_code),
                grant.client_id,
                grant.ip,
                grant.user_agent,
                as_utc(grant.created_at),
                as_utc(grant.expires_at),
            )
        self._right_guess(guesses)
        return pending

    def _count_guess(
        self, caller: Principal, context: RequestContext
    ) -> list[tuple[Throttle, int]]:
        """Typing a code is a guess, counted before it is checked (throttled past the limit)."""
        message = "Too many wrong codes"
        guesses = [
            (self.user_throttle, self.user_throttle.admit(f"user:{caller.user_id}", message))
        ]
        if context.ip:
            guesses.append((self.ip_throttle, self.ip_throttle.admit(f"ip:{context.ip}", message)))
        return guesses

    @staticmethod
    def _right_guess(guesses: list[tuple[Throttle, int]]) -> None:
        for throttle, guess in guesses:
            throttle.succeeded(guess)

    def _find(self, session: Session, typed_code: str) -> DeviceGrant:
        code = normalize_user_code(typed_code)
        now = self._clock.now()
        grant = None
        if code is not None:
            grant = devices.pending_with_user_code(session, code, now)
        if grant is None:  # the guess stays counted
            raise NotFound("No pending sign-in with that code; check it and try again")
        return grant

"""``authenticate()``: request credentials in, ``Principal`` out, or one 401.

Every failure raises the same ``Unauthorized``; the true reason (missing is
not audited; malformed, unknown, revoked, expired, owner_removed are) goes
to the audit log with the key id or display prefix when known. Steady state
costs one SHA-256 and one dict lookup: no database round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from runtools.server.auth.cache import VerificationCache
from runtools.server.auth.keys import DISPLAY_PREFIX_LENGTH, hash_key, is_well_formed
from runtools.server.auth.principal import Principal
from runtools.server.clock import Clock
from runtools.server.errors import InvalidRequest, Unauthorized
from runtools.server.events import CredentialEvent, EventKind
from runtools.server.services.audit import AuditRecord, AuditWriter, RequestContext
from runtools.server.services.usage import UsageRecorder
from runtools.server.store.credentials import KeyRecord, load_key_record
from runtools.server.store.database import Database, unavailable


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    record: KeyRecord
    # Built once per cache fill; None when the owner has left the organization.
    principal: Principal | None


def _principal(record: KeyRecord) -> Principal | None:
    if record.owner_role is None:
        return None
    return Principal(
        org_id=record.org_id,
        org_name=record.org_name,
        user_id=record.owner_id,
        user_email=record.owner_email,
        user_display_name=record.owner_display_name,
        role=record.owner_role,
        credential_type="api_key",
        credential_id=record.key_id,
        credential_name=record.key_name,
        key_prefix=record.key_prefix,
        scopes=record.scopes,
        expires_at=record.expires_at,
        revokes_at=record.revoked_at,
        is_test=record.is_test,
        plan=record.org_plan,
        rate_limit=record.rate_limit,
    )


def presented_credential(headers: Mapping[str, str]) -> str | None:
    """The one credential a request carries; two different ones are a 400."""
    api_key = headers.get("x-api-key")
    authorization = headers.get("authorization")
    bearer: str | None = None
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        # An unusable Authorization header is an empty credential, not "none".
        bearer = token.strip() if scheme.lower() == "bearer" else ""
    if api_key is not None and bearer is not None and api_key.strip() != bearer:
        raise InvalidRequest(
            "Send one credential per request: X-API-Key or Authorization: Bearer, not both"
        )
    if api_key is not None:
        return api_key.strip()
    return bearer


class Authenticator:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        cache: VerificationCache[VerifiedKey],
        audit: AuditWriter,
        usage: UsageRecorder,
    ) -> None:
        self._database = database
        self._clock = clock
        self._cache = cache
        self._audit = audit
        self._usage = usage

    async def authenticate(self, headers: Mapping[str, str], context: RequestContext) -> Principal:
        token = presented_credential(headers)
        if token is None:
            raise Unauthorized()
        if not is_well_formed(token):
            prefix = token[:DISPLAY_PREFIX_LENGTH] if token.startswith("rt_") else None
            self._fail("malformed", context, prefix=prefix)
        digest = hash_key(token)
        found, verified = self._cache.get(digest)
        if not found:
            epoch = self._cache.epoch  # a revocation landing mid-read must not be cached over
            verified = await anyio.to_thread.run_sync(self._load, digest)
            self._cache.put(digest, verified, epoch=epoch)
        if verified is None:
            self._fail("unknown", context, prefix=token[:DISPLAY_PREFIX_LENGTH])
        record = verified.record
        now = self._clock.now()
        if record.revoked_at is not None and record.revoked_at <= now:
            self._fail("revoked", context, record=record)
        if record.expires_at is not None and record.expires_at <= now:
            self._fail("expired", context, record=record)
        if verified.principal is None:
            self._fail("owner_removed", context, record=record)
        self._usage.touch(record.key_id, now)
        return verified.principal

    def _load(self, digest: str) -> VerifiedKey | None:
        try:
            with self._database.session() as session:
                record = load_key_record(session, digest)
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc
        return VerifiedKey(record, _principal(record)) if record is not None else None

    def _fail(
        self,
        reason: str,
        context: RequestContext,
        *,
        record: KeyRecord | None = None,
        prefix: str | None = None,
    ) -> NoReturn:
        details = {"keyPrefix": record.key_prefix if record else prefix}
        self._audit.enqueue(
            AuditRecord(
                action="auth.failed",
                outcome="failure",
                reason=reason,
                org_id=record.org_id if record else None,
                actor_type="api_key",
                actor_id=record.key_id if record else None,
                target_type="api_key" if record else None,
                target_id=record.key_id if record else None,
                context=context,
                details=details if details["keyPrefix"] else {},
            )
        )
        raise Unauthorized()

    def forget(self, event: CredentialEvent) -> None:
        """Drop cached verifications an event makes stale."""
        if event.kind in {EventKind.KEY_REVOKED, EventKind.KEY_CHANGED}:
            self._cache.discard_where(lambda v: v.record.key_id == event.key_id)
        elif event.kind is EventKind.ORG_CHANGED:
            self._cache.discard_where(lambda v: v.record.org_id == event.org_id)
        elif event.kind is EventKind.MEMBER_CHANGED:
            self._cache.discard_where(
                lambda v: v.record.org_id == event.org_id and v.record.owner_id == event.user_id
            )

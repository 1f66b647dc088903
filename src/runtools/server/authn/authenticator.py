"""``authenticate()``: request credentials in, ``Principal`` out, or one 401.

Three kinds of bearer credential: API keys (``rt_live_…``/``rt_test_…``),
our access tokens (JWTs from ``Keyring``) and, when configured, JWTs of an
external OIDC issuer. Every failure raises the same ``Unauthorized``; the
true reason (malformed, unknown, revoked, expired, owner_removed, …) goes to
the audit log with the key id or display prefix when known. A request with
no credential at all is not audited.

Steady state costs one SHA-256 and one dict lookup: verified credentials are
cached by digest (misses too), so neither a database round trip nor a
signature check happens per request. ``SteadyPath`` (steady.py) is that
steady state on its own, straight from the raw request headers; whatever it
does not vouch for (any failure, any unusual form) goes through
``authenticate()``, which decides and audits. The caller's ``RequestContext`` is
asked for only when a failure is audited: a successful request never builds
one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

import anyio.to_thread
import jwt

from runtools.server.authn.cache import VerificationCache
from runtools.server.authn.external import ExternalIssuer
from runtools.server.authn.signing import InvalidToken, Keyring
from runtools.server.authn.usage import INVALID, UsageRecorder
from runtools.server.domain.audit import CANARY_USED, AuditRecord, RequestContext
from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import Forbidden, InvalidRequest, Unauthorized
from runtools.server.domain.events import CredentialEvent, EventKind
from runtools.server.domain.key_term import KeyTerm
from runtools.server.domain.key_use import Network, address_allowed, networks_of, sent_from_browser
from runtools.server.domain.keys import (
    DISPLAY_PREFIX_LENGTH,
    hash_key,
    is_well_formed,
    looks_like_api_key,
)
from runtools.server.domain.principal import Principal
from runtools.server.domain.tokens import looks_like_refresh_token
from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.repositories.audit import AuditWriter
from runtools.server.store.repositories.credentials import (
    KeyRecord,
    load_key_record,
    load_session_credential,
)

#: Where the request came from, built on demand (only failures are audited here).
ContextSource = Callable[[], RequestContext]


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    record: KeyRecord
    # When the key ends and why it is refused: the one rule (domain/key_term.py).
    term: KeyTerm
    # Built once per cache fill; None when the owner has left the organization.
    principal: Principal | None
    # ``term.ends``, kept beside it: compared on every request by the steady path.
    ends: float
    # Whose last use to note (``lastUsedAt``); the hot path reads it for either kind.
    key_id: str
    # The one mutable part: when the next use must be noted again (``touch``'s
    # answer, the end of the minute last noted), so the hot path skips the call
    # until then.
    next_note: list[float] = field(compare=False)
    # Where the key may be used from (domain/key_use.py): the steady path steps
    # aside for a browser's request to a key that refuses browsers, and for any
    # key with an allowlist (it does not know the caller's address).
    browser_allowed: bool = False
    networks: tuple[Network, ...] = ()
    # Requests admitted with the key: ``UsageRecorder.counter``'s list, one per key,
    # added to in place on every admitted request (steady path or full).
    uses: list[int] = field(default_factory=lambda: [0], compare=False)

    @classmethod
    def of(cls, record: KeyRecord, uses: list[int] | None = None) -> VerifiedKey:
        term = KeyTerm(
            record.expires_at,
            record.revoked_at,
            owner_is_member=record.owner_role is not None,
            is_canary=record.is_canary,
        )
        principal = _key_principal(record, term)
        return cls(
            record,
            term,
            principal,
            term.ends,
            record.key_id,
            [-math.inf],
            browser_allowed=record.allow_browser,
            networks=networks_of(record.allowed_cidrs),
            uses=uses if uses is not None else [0],
        )

    @property
    def credential_id(self) -> str:
        return self.record.key_id

    @property
    def org_id(self) -> str:
        return self.record.org_id

    @property
    def user_id(self) -> str:
        return self.record.owner_id


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    principal: Principal
    expires_at: datetime
    ends: float  # expires_at in seconds since the epoch, for the hot path
    key_id: None = None  # no lastUsedAt for tokens
    browser_allowed: bool = True  # sessions are how browsers sign in
    networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, principal: Principal, expires_at: datetime) -> VerifiedToken:
        return cls(principal, expires_at, expires_at.timestamp())

    @property
    def credential_id(self) -> str:
        return self.principal.credential_id

    @property
    def org_id(self) -> str:
        return self.principal.org_id

    @property
    def user_id(self) -> str:
        return self.principal.user_id


Verified = VerifiedKey | VerifiedToken


def _key_principal(record: KeyRecord, term: KeyTerm) -> Principal | None:
    if record.owner_role is None:
        return None
    return Principal.for_api_key(
        org_id=record.org_id,
        org_name=record.org_name,
        plan=record.org_plan,
        user_id=record.owner_id,
        user_email=record.owner_email,
        user_display_name=record.owner_display_name,
        role=record.owner_role,
        key_id=record.key_id,
        key_name=record.key_name,
        key_prefix=record.key_prefix,
        scopes=record.scopes,
        is_test=record.is_test,
        rate_limit=record.rate_limit,
        term=term,
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
        *,
        database: Database,
        clock: Clock,
        settings: Settings,
        cache: VerificationCache[Verified],
        audit: AuditWriter,
        usage: UsageRecorder,
        keyring: Keyring,
        external: ExternalIssuer | None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._settings = settings
        self._cache = cache
        self._audit = audit
        self._usage = usage
        self._keyring = keyring
        self._external = external

    @property
    def cache(self) -> VerificationCache[Verified]:
        return self._cache

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def note_use(self) -> Callable[[str, float], float]:
        """Note an API key's use (``lastUsedAt``); returns when the next note is due."""
        return self._usage.touch

    async def authenticate(self, headers: Mapping[str, str], context: ContextSource) -> Principal:
        token = presented_credential(headers)
        if token is None:
            raise Unauthorized()
        if looks_like_api_key(token):
            # Also taken for keys the steady path left alone: it decides, and audits refusals.
            digest = hash_key(token)
            found, verified = self._cache.get(digest)
            if not found:
                verified = await self._fill_key(token, digest, context)
            return self._admit_key(verified, token, headers, context)
        if headers.get("x-api-key") is not None:
            # X-API-Key carries API keys only; tokens go in Authorization: Bearer.
            self._fail("malformed", context)
        if looks_like_refresh_token(token):
            self._fail("refresh_token_as_access_token", context, actor_type="session")
        if token.count(".") == 2:
            return await self._jwt(token, context)
        self._fail("malformed", context)

    # -- API keys --------------------------------------------------------------

    async def _fill_key(self, token: str, digest: str, context: ContextSource) -> Verified | None:
        # Only well-formed keys are ever cached, so a hit needs no shape or checksum check.
        if not is_well_formed(token):
            self._fail("malformed", context, prefix=token[:DISPLAY_PREFIX_LENGTH])
        epoch = self._cache.epoch  # a revocation landing mid-read must not be cached over
        verified = await anyio.to_thread.run_sync(self._load_key, digest)
        self._cache.put(digest, verified, epoch=epoch)
        return verified

    def _admit_key(
        self,
        verified: Verified | None,
        token: str,
        headers: Mapping[str, str],
        context: ContextSource,
    ) -> Principal:
        if not isinstance(verified, VerifiedKey):
            self._fail("unknown", context, prefix=token[:DISPLAY_PREFIX_LENGTH])
        record = verified.record
        now = self._clock.now()
        refusal = verified.term.refusal(now)
        if refusal is not None or verified.principal is None:
            self._fail(refusal or "owner_removed", context, record=record)
        # Outside its allowlist a key is as good as unknown: the same 401, told to no one.
        if verified.networks and not address_allowed(verified.networks, context().ip):
            self._fail("address_not_allowed", context, record=record)
        if not verified.browser_allowed and sent_from_browser(headers):
            self._refuse_browser(record, context)
        verified.uses[0] += 1
        self._usage.touch(record.key_id, now.timestamp())
        self._usage.seen_from(record.key_id, context().ip)
        return verified.principal

    def _load_key(self, digest: str) -> VerifiedKey | None:
        # Any database error is a 503 here: a key is never let through, nor a 500, unchecked.
        with self._database.failing_closed() as session:
            record = load_key_record(session, digest)
        if record is None:
            return None
        return VerifiedKey.of(record, self._usage.counter(record.key_id))

    # -- access tokens -----------------------------------------------------------

    async def _jwt(self, token: str, context: ContextSource) -> Principal:
        digest = hash_key(token)
        found, verified = self._cache.get(digest)
        if found and verified is None:
            self._fail("invalid_token", context, actor_type="session")
        if not isinstance(verified, VerifiedToken):
            epoch = self._cache.epoch  # a logout landing mid-read must not be cached over
            outcome = await anyio.to_thread.run_sync(self._verify_token, token)
            if isinstance(outcome, str):
                self._cache.put(digest, None, epoch=epoch)
                self._fail(outcome, context, actor_type="session")
            verified = outcome
            self._cache.put(digest, verified, epoch=epoch)
        if verified.expires_at <= self._clock.now():
            self._fail("expired", context, actor_type="session")
        return verified.principal

    def _verify_token(self, token: str) -> VerifiedToken | str:
        """Signature and claims, then the session as the store has it now.

        Returns the reason instead when the token is not good.
        """
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return "malformed"
        try:
            if issuer == self._settings.jwt_issuer:
                claims = self._keyring.verify(
                    token, issuer=self._settings.jwt_issuer, audience=self._settings.jwt_audience
                )
                found = self._session_principal(claims)
                if isinstance(found, str):
                    return found
                principal = found
            elif self._external is not None and issuer == self._external.issuer:
                principal = self._external.principal_for(token)
            else:
                return "unknown_issuer"
        except InvalidToken as exc:
            return exc.reason
        assert principal.expires_at is not None
        return VerifiedToken.of(principal, principal.expires_at)

    def _session_principal(self, claims: dict[str, object]) -> Principal | str:
        """The principal an access token stands for, as of now, or why there is none."""
        now = self._clock.now()
        with self._database.session() as session:
            found = load_session_credential(session, str(claims["sid"]))
        if found is None or found.user_id != claims["sub"] or found.org_id != claims["org"]:
            return "unknown_session"
        if found.revoked_at is not None:
            return "revoked"
        if found.expires_at <= now:
            return "expired"
        if found.role is None:
            return "owner_removed"
        exp = claims["exp"]
        assert isinstance(exp, int | float)
        return Principal.for_session(
            org_id=found.org_id,
            org_name=found.org_name,
            plan=found.org_plan,
            user_id=found.user_id,
            user_email=found.user_email,
            user_display_name=found.user_display_name,
            role=found.role,
            session_id=found.session_id,
            client_name=found.client_name,
            expires_at=datetime.fromtimestamp(exp, tz=now.tzinfo),
        )

    # -- failures ----------------------------------------------------------------

    def _refuse_browser(self, record: KeyRecord, context: ContextSource) -> NoReturn:
        """A good key sent by a browser: a 403 that says why, audited as a denial."""
        self._usage.refused(record.key_id, INVALID)
        self._audit.enqueue(
            AuditRecord(
                action="authz.denied",
                outcome="failure",
                reason="sent_from_browser",
                org_id=record.org_id,
                actor_type="api_key",
                actor_id=record.key_id,
                target_type="api_key",
                target_id=record.key_id,
                context=context(),
                details={"keyPrefix": record.key_prefix},
            )
        )
        raise Forbidden(
            "API keys are not accepted from a browser (the request carries Origin or "
            "Sec-Fetch-Site): keep the key on a server, or sign in for a session; a key "
            "meant for browsers must be created with allowBrowser: true"
        )

    def _fail(
        self,
        reason: str,
        context: ContextSource,
        *,
        record: KeyRecord | None = None,
        prefix: str | None = None,
        actor_type: str = "api_key",
    ) -> NoReturn:
        key_prefix = record.key_prefix if record else prefix
        details: dict[str, object] = {"keyPrefix": key_prefix} if key_prefix else {}
        if record is not None:
            self._usage.refused(record.key_id, INVALID)
            self._usage.seen_from(record.key_id, context().ip)
        action = "auth.failed"
        if record is not None and record.is_canary:
            # Whoever holds a honeytoken found it where only a thief would look.
            action = CANARY_USED
            details["severity"] = "high"
        self._audit.enqueue(
            AuditRecord(
                action=action,
                outcome="failure",
                reason=reason,
                org_id=record.org_id if record else None,
                actor_type=actor_type,
                actor_id=record.key_id if record else None,
                target_type="api_key" if record else None,
                target_id=record.key_id if record else None,
                context=context(),
                details=details,
            )
        )
        raise Unauthorized()

    def forget(self, event: CredentialEvent) -> None:
        """Drop cached verifications an event makes stale."""
        if event.kind in {EventKind.KEY_REVOKED, EventKind.KEY_CHANGED}:
            self._cache.discard_where(lambda v: v.credential_id == event.key_id)
        elif event.kind is EventKind.SESSION_REVOKED:
            self._cache.discard_where(lambda v: v.credential_id == event.session_id)
        elif event.kind is EventKind.ORG_CHANGED:
            self._cache.discard_where(lambda v: v.org_id == event.org_id)
        elif event.kind is EventKind.MEMBER_CHANGED:
            self._cache.discard_where(
                lambda v: v.org_id == event.org_id and v.user_id == event.user_id
            )

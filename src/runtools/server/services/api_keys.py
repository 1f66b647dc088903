"""API keys: minting, listing, changing, revoking and rotating.

Rules enforced here, whatever the transport:
- a caller sees and manages its own keys; an admin every key of the org;
  anything else is "not found", so existence never leaks;
- a key can never be given more than its creator can use (scopes are
  checked against the caller's effective scopes on create, update and
  rotate) nor anything its owner's role cannot hold;
- revocation and rotation commit before the response and publish an event
  that drops the key from every verification cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from runtools import _models as sdk
from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.durations import DurationError, parse_duration
from runtools.server.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from runtools.server.domain.events import CredentialEvent, EventBus, EventKind
from runtools.server.domain.ids import new_id
from runtools.server.domain.key_policy import KeyPolicy
from runtools.server.domain.key_term import ACTIVE, EXPIRED, REVOKED, KeyTerm
from runtools.server.domain.key_use import CidrError, normalized_cidrs
from runtools.server.domain.keys import generate_key
from runtools.server.domain.principal import Principal
from runtools.server.domain.roles import role_permits
from runtools.server.domain.scopes import UnknownScopeError, normalize
from runtools.server.domain.wire import sent_shape
from runtools.server.ratelimit.policy import plan_limits
from runtools.server.services.audit import AuditEventOut
from runtools.server.services.projects import checked_project
from runtools.server.store.database import Database
from runtools.server.store.models import ApiKey, Organization, User
from runtools.server.store.pagination import Page
from runtools.server.store.repositories import api_keys, audit, organizations

if TYPE_CHECKING:
    from runtools.server.store.database import Session

MAX_EXPIRY = timedelta(days=5 * 365)
#: Why a key was revoked (``revokedReason``); a reported leak is the secret scanner's.
REVOKED_BY_CALL = "revoked"
#: A key its organization's policy revoked for going unused too long.
REVOKED_UNUSED = "unused"
REVOKED_BY_ROTATION = "rotated"
MAX_GRACE = timedelta(days=30)
STORE_KEY_MESSAGE = (
    "Store this key now, in a secret manager or environment variable. It will not be shown again."
)


class Unset:
    """Marks a field a PATCH did not mention (as opposed to an explicit null)."""


UNSET = Unset()


@sent_shape
class ApiKeyOut(sdk.ApiKey):
    # An API key as its owner may see it, everything but the secret: the
    # SDK's ``ApiKey``, every field required (fields and docs are declared there).
    ...


@sent_shape
class BlastRadiusActionOut(sdk.BlastRadiusAction):
    # One audited action and its count: the SDK's ``BlastRadiusAction``, every field required.
    ...


@sent_shape
class BlastRadiusOut(sdk.BlastRadius):
    # What a key did lately: the SDK's ``BlastRadius``, every field required.
    actions: list[BlastRadiusActionOut]  # type: ignore[assignment]


@sent_shape
class KeyUsageDayOut(sdk.KeyUsageDay):
    # A key's use on one day: the SDK's ``KeyUsageDay``, every field required.
    ...


#: How far back a key's usage can be asked for.
MAX_USAGE_DAYS = 90

#: How far back a revoke's blast radius looks.
BLAST_RADIUS_DAYS = 30


@dataclass(frozen=True)
class IssuedKey:
    """A newly minted key: the only object that ever holds the plaintext."""

    view: ApiKeyOut
    secret: str
    message: str = STORE_KEY_MESSAGE


def key_term(key: ApiKey, *, owner_is_member: bool = True) -> KeyTerm:
    """The stored key's expiry and revocation, for the one rule of when it ends."""
    return KeyTerm(
        as_utc(key.expires_at) if key.expires_at is not None else None,
        as_utc(key.revoked_at) if key.revoked_at is not None else None,
        owner_is_member=owner_is_member,
        is_canary=key.is_canary,
    )


@dataclass(frozen=True)
class KeyUse:
    """Where a new key may be used from (``domain/key_use.py``), and whether it is a canary."""

    allow_browser: bool = False
    allowed_cidrs: list[str] | None = None
    is_canary: bool = False


def _validated_cidrs(cidrs: list[str] | None) -> list[str] | None:
    if cidrs is None:
        return None
    try:
        return normalized_cidrs(cidrs) or None
    except CidrError as exc:
        raise InvalidRequest(str(exc)) from exc


@dataclass(frozen=True)
class KeyHolder:
    """Who a key belongs to: its owner, its organization, and whether the owner is a member."""

    owner: User
    org: Organization
    owner_is_member: bool


def _view(key: ApiKey, holder: KeyHolder, now: datetime) -> ApiKeyOut:
    def utc(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    owner = holder.owner
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        scopes=list(key.scopes),
        project_id=key.project_id,
        is_test=key.is_test,
        expires_at=utc(key.expires_at),
        last_used_at=utc(key.last_used_at),
        revoked_at=utc(key.revoked_at),
        revoked_reason=key.revoked_reason if key.revoked_at is not None else None,
        created_at=as_utc(key.created_at),
        status=key_term(key, owner_is_member=holder.owner_is_member).status(now),
        org_id=holder.org.id,
        org_name=holder.org.name,
        owner_user_id=owner.id,
        owner_display_name=owner.display_name,
        owner_email=owner.email,
        rotated_from_id=key.rotated_from_id,
        rotated_to_id=key.rotated_to_id,
        rate_limit=key.rate_limit,
        allow_browser=key.allow_browser,
        allowed_cidrs=list(key.allowed_cidrs or []),
        is_canary=key.is_canary,
    )


def _validated_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidRequest("name must be 1-100 characters")
    return name


def _validated_scopes(scopes: list[str] | None) -> list[str]:
    try:
        return normalize(scopes)
    except UnknownScopeError as exc:
        raise InvalidRequest(str(exc)) from exc


def _expiry(expires_in: str | None, now: datetime) -> datetime | None:
    if expires_in is None:
        return None
    try:
        return now + parse_duration(expires_in, maximum=MAX_EXPIRY)
    except DurationError as exc:
        raise InvalidRequest(f"expiresIn: {exc}") from exc


def _validated_rate_limit(rate_limit: int | None, plan: str) -> int | None:
    """A key may be slower than its organization's plan allows, never faster."""
    ceiling = plan_limits(plan).live
    if rate_limit is not None and not 1 <= rate_limit <= ceiling:
        raise InvalidRequest(
            f"rateLimit must be between 1 and {ceiling} (the {plan} plan's requests per minute)"
        )
    return rate_limit


def bounded_by_maker(
    caller: Principal | None, expires_at: datetime | None, *, is_test: bool, asked: bool
) -> datetime | None:
    """A key made (or rotated) by a key ends no later than its maker, and is a test key
    if its maker is; a signed-in person (or the operator) may choose any lifetime.

    ``asked``: the expiry was requested explicitly. Asked for longer than the maker
    lives, it is refused, saying until when; not asked, it is cut to the maker's end.
    """
    if caller is None or caller.credential_type != "api_key":
        return expires_at
    if caller.is_test and not is_test:
        raise Forbidden("A test key (rt_test_) can only make test keys: send isTest: true")
    maker_ends = caller.ends_at
    if maker_ends is None or (expires_at is not None and expires_at <= maker_ends):
        return expires_at
    if asked:
        raise Forbidden(
            "A key made by a key ends no later than the key that makes it: this key "
            f"ends at {maker_ends.isoformat()}; ask for an expiresIn up to then, or leave "
            "it out to end with this key (or sign in to make a longer-lived key)"
        )
    return maker_ends


def key_policy(org: Organization) -> KeyPolicy:
    """What the organization's admins require of its keys' lifetimes."""
    return KeyPolicy(org.max_key_lifetime, org.require_key_expiry)


def check_grant(caller: Principal | None, owner_role: str, scopes: list[str]) -> None:
    """Refuse scopes the owner's role cannot hold or the caller cannot use itself."""
    beyond_role = [s for s in scopes if not role_permits(owner_role, s)]
    if beyond_role:
        raise Forbidden(
            f"A key owned by a {owner_role} cannot hold scope(s): {', '.join(beyond_role)}"
        )
    if caller is None:  # operator commands act with the database's authority
        return
    beyond_caller = [s for s in scopes if not caller.allows(s)]
    if beyond_caller:
        raise Forbidden(
            "Cannot grant scopes beyond your own effective scopes: " + ", ".join(beyond_caller)
        )


class ApiKeyService:
    def __init__(self, database: Database, clock: Clock, bus: EventBus) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus

    # -- minting ---------------------------------------------------------------

    def create(
        self,
        caller: Principal,
        *,
        name: str,
        scopes: list[str] | None,
        expires_in: str | None,
        is_test: bool,
        project_id: str | None,
        context: RequestContext,
        rate_limit: int | None = None,
        use: KeyUse = KeyUse(),
    ) -> IssuedKey:
        now = self._clock.now()
        name = _validated_name(name)
        normalized = _validated_scopes(scopes)
        use = KeyUse(use.allow_browser, _validated_cidrs(use.allowed_cidrs), use.is_canary)
        expires_at = bounded_by_maker(
            caller, _expiry(expires_in, now), is_test=is_test, asked=expires_in is not None
        )
        check_grant(caller, caller.role, normalized)
        with self._database.session() as session:
            project_id = checked_project(session, caller, project_id)
            owner = organizations.user(session, caller.user_id)
            org = organizations.organization(session, caller.org_id)
            rate_limit = _validated_rate_limit(rate_limit, org.plan)
            if not use.is_canary:  # a honeytoken never authenticates: nothing to bound
                key_policy(org).check(expires_at, now)
            issued = self._mint(
                session,
                holder=KeyHolder(owner, org, owner_is_member=True),
                name=name,
                scopes=normalized,
                expires_at=expires_at,
                is_test=is_test,
                project_id=project_id,
                rotated_from_id=None,
                rate_limit=rate_limit,
                use=use,
            )
            self._audit(session, caller, "api_key.created", issued.view, context)
            session.commit()
        return issued

    def issue_for_operator(
        self,
        org: Organization,
        owner: User,
        role: str,
        *,
        name: str,
        scopes: list[str] | None,
        expires_in: str | None,
        is_test: bool,
    ) -> IssuedKey:
        """The bootstrap path (``runtools admin create-key``): no calling credential."""
        now = self._clock.now()
        name = _validated_name(name)
        normalized = _validated_scopes(scopes)
        expires_at = _expiry(expires_in, now)
        check_grant(None, role, normalized)
        with self._database.session() as session:
            issued = self._mint(
                session,
                holder=KeyHolder(
                    organizations.user(session, owner.id),
                    organizations.organization(session, org.id),
                    owner_is_member=True,
                ),
                name=name,
                scopes=normalized,
                expires_at=expires_at,
                is_test=is_test,
                project_id=None,
                rotated_from_id=None,
            )
            audit.record(
                session,
                AuditRecord(
                    action="api_key.created",
                    outcome="success",
                    org_id=org.id,
                    actor_type="operator",
                    actor_id=None,
                    context=RequestContext(),
                    target_type="api_key",
                    target_id=issued.view.id,
                    details={
                        "name": name,
                        "scopes": normalized,
                        "keyPrefix": issued.view.key_prefix,
                    },
                ),
                now,
            )
            session.commit()
        return issued

    def _mint(
        self,
        session: Session,
        *,
        holder: KeyHolder,
        name: str,
        scopes: list[str],
        expires_at: datetime | None,
        is_test: bool,
        project_id: str | None,
        rotated_from_id: str | None,
        rate_limit: int | None = None,
        use: KeyUse = KeyUse(),
    ) -> IssuedKey:
        now = self._clock.now()
        generated = generate_key(is_test=is_test)
        key = api_keys.add(
            session,
            ApiKey(
                id=new_id("key"),
                org_id=holder.org.id,
                owner_user_id=holder.owner.id,
                name=name,
                key_hash=generated.key_hash,
                key_prefix=generated.display_prefix,
                scopes=scopes,
                project_id=project_id,
                is_test=is_test,
                expires_at=expires_at,
                last_used_at=None,
                revoked_at=None,
                rotated_from_id=rotated_from_id,
                rotated_to_id=None,
                created_at=now,
                rate_limit=rate_limit,
                allow_browser=use.allow_browser,
                allowed_cidrs=use.allowed_cidrs,
                is_canary=use.is_canary,
            ),
        )
        return IssuedKey(_view(key, holder, now), generated.plaintext)

    # -- reading ---------------------------------------------------------------

    def list_keys(
        self,
        caller: Principal,
        *,
        all_keys: bool,
        limit: int,
        cursor: str | None,
        project_id: str | None = None,
    ) -> Page[ApiKeyOut]:
        if all_keys and not caller.is_admin:
            raise Forbidden("Listing every key of the organization requires role admin")
        now = self._clock.now()
        with self._database.session() as session:
            page = api_keys.list_page(
                session,
                caller.org_id,
                owner_user_id=None if all_keys else caller.user_id,
                limit=limit,
                cursor=cursor,
                project_id=checked_project(session, caller, project_id),
            )
            owner_ids = {k.owner_user_id for k in page.items}
            owners = organizations.users_by_id(session, owner_ids)
            members = organizations.member_ids(session, caller.org_id, owner_ids)
            org = organizations.organization(session, caller.org_id)
            views = [
                _view(
                    k,
                    KeyHolder(
                        owners[k.owner_user_id], org, owner_is_member=k.owner_user_id in members
                    ),
                    now,
                )
                for k in page.items
            ]
        return Page(views, page.next_cursor)

    def get(self, caller: Principal, key_id: str) -> ApiKeyOut:
        with self._database.session() as session:
            key, holder = self._visible(session, caller, key_id)
            return _view(key, holder, self._clock.now())

    def events(
        self, caller: Principal, key_id: str, *, limit: int, cursor: str | None
    ) -> Page[AuditEventOut]:
        """The audit log about one key (made, changed, rotated, revoked, leaked, failed
        uses), for whoever may see the key: its owner as well as the org's admins."""
        with self._database.session() as session:
            key, _holder = self._visible(session, caller, key_id)
            page = audit.list_events(
                session,
                key.org_id,
                action=None,
                since=None,
                until=None,
                limit=limit,
                cursor=cursor,
                target=("api_key", key.id),
            )
            return Page([AuditEventOut.of(event) for event in page.items], page.next_cursor)

    # -- changing --------------------------------------------------------------

    def update(
        self,
        caller: Principal,
        key_id: str,
        *,
        name: str | Unset = UNSET,
        scopes: list[str] | Unset | None = UNSET,
        project_id: str | Unset | None = UNSET,
        context: RequestContext,
        rate_limit: int | Unset | None = UNSET,
        allow_browser: bool | Unset = UNSET,
        allowed_cidrs: list[str] | Unset | None = UNSET,
    ) -> ApiKeyOut:
        with self._database.session() as session:
            key, holder = self._visible(session, caller, key_id)
            now = self._clock.now()
            status = key_term(key).status(now)
            if status in {REVOKED, EXPIRED}:
                raise Conflict(f"Key {key.id} is {status}; create a new key instead")
            changed: list[str] = []
            if not isinstance(name, Unset):
                key.name = _validated_name(name)
                changed.append("name")
            if not isinstance(scopes, Unset):
                if not scopes:  # on create an empty list means "*"; here it must be said
                    raise InvalidRequest(
                        'scopes: an empty list would grant every scope; send ["*"] for that'
                    )
                normalized = _validated_scopes(scopes)
                owner_role = self._owner_role(session, key)
                check_grant(caller, owner_role, normalized)
                key.scopes = normalized
                changed.append("scopes")
            if not isinstance(project_id, Unset):
                key.project_id = checked_project(session, caller, project_id)
                changed.append("projectId")
            if not isinstance(rate_limit, Unset):
                org = organizations.organization(session, key.org_id)
                key.rate_limit = _validated_rate_limit(rate_limit, org.plan)
                changed.append("rateLimit")
            if not isinstance(allow_browser, Unset):
                key.allow_browser = allow_browser
                changed.append("allowBrowser")
            if not isinstance(allowed_cidrs, Unset):
                key.allowed_cidrs = _validated_cidrs(allowed_cidrs)
                changed.append("allowedCidrs")
            view = _view(key, holder, now)
            self._audit(session, caller, "api_key.updated", view, context, {"changed": changed})
            session.commit()
        if {"scopes", "rateLimit", "allowBrowser", "allowedCidrs"} & set(changed):
            self._bus.publish(CredentialEvent(EventKind.KEY_CHANGED, key.org_id, key_id=key.id))
        return view

    def revoke(self, caller: Principal, key_id: str, *, context: RequestContext) -> ApiKeyOut:
        with self._database.session() as session:
            key, holder = self._visible(session, caller, key_id)
            now = self._clock.now()
            # Revoking a key in its grace period ends the grace now.
            if key_term(key).status(now) != REVOKED:
                key.revoked_at = now
                key.revoked_reason = REVOKED_BY_CALL
            view = _view(key, holder, now)
            self._audit(session, caller, "api_key.revoked", view, context)
            session.commit()
        self._bus.publish(CredentialEvent(EventKind.KEY_REVOKED, key.org_id, key_id=key.id))
        return view

    def usage(self, caller: Principal, key_id: str, *, days: int) -> list[KeyUsageDayOut]:
        """The key's use on each of the last ``days`` days (UTC), today last; zeros included."""
        today = self._clock.now().date()
        first = today - timedelta(days=days - 1)
        with self._database.session() as session:
            key, _ = self._visible(session, caller, key_id)
            stored = {row.day: row for row in api_keys.usage_of(session, key.id, first)}
        out = []
        for n in range(days):
            day = first + timedelta(days=n)
            row = stored.get(day)
            out.append(
                KeyUsageDayOut(
                    day=day,
                    requests=row.requests if row else 0,
                    invalid=row.invalid if row else 0,
                    rate_limited=row.rate_limited if row else 0,
                    last_address=row.last_address if row else None,
                )
            )
        return out

    def revoke_unused(self) -> list[str]:
        """Revoke every key unused for longer than its organization's policy allows.

        Run hourly by every node; each key is revoked (and audited, as the
        system's act) once, whichever node finds it first.
        """
        now = self._clock.now()
        revoked = []
        # An outage is a ServiceUnavailable here (the database says so once): the
        # next round tries again.
        with self._database.failing_closed() as session:
            for key in api_keys.unused_for_too_long(session, now):
                if not api_keys.revoke_if_live(session, key.id, now, REVOKED_UNUSED):
                    continue
                revoked.append(key)
                last = key.last_used_at
                audit.record(
                    session,
                    AuditRecord(
                        action="api_key.revoked",
                        outcome="success",
                        reason=REVOKED_UNUSED,
                        org_id=key.org_id,
                        actor_type="system",
                        actor_id=None,
                        context=RequestContext(),
                        target_type="api_key",
                        target_id=key.id,
                        details={
                            "name": key.name,
                            "keyPrefix": key.key_prefix,
                            "lastUsedAt": as_utc(last).isoformat() if last else None,
                            "policy": "revokeUnusedAfterDays",
                        },
                    ),
                    now,
                )
            session.commit()
        for key in revoked:
            self._bus.publish(CredentialEvent(EventKind.KEY_REVOKED, key.org_id, key_id=key.id))
        return [key.id for key in revoked]

    def blast_radius(self, caller: Principal, key_id: str) -> BlastRadiusOut:
        """What the key did in the last ``BLAST_RADIUS_DAYS`` days, from the audit log."""
        since = self._clock.now() - timedelta(days=BLAST_RADIUS_DAYS)
        with self._database.session() as session:
            key, _ = self._visible(session, caller, key_id)
            done = audit.activity_of(session, key.org_id, key.id, since)
        return BlastRadiusOut(
            since=since,
            events=sum(n for _, n in done.by_action),
            refusals=done.refusals,
            actions=[BlastRadiusActionOut(action=a, count=n) for a, n in done.by_action],
            targets=done.targets,
            addresses=done.addresses,
            last_event_at=done.last_at,
        )

    def rotate(
        self,
        caller: Principal,
        key_id: str,
        *,
        name: str | None,
        expires_in: str | None,
        grace_period: str | None,
        context: RequestContext,
    ) -> IssuedKey:
        now = self._clock.now()
        try:
            grace = parse_duration(grace_period or "0", maximum=MAX_GRACE, allow_zero=True)
        except DurationError as exc:
            raise InvalidRequest(f"gracePeriod: {exc}") from exc
        with self._database.session() as session:
            old, holder = self._visible(session, caller, key_id)
            status = key_term(old, owner_is_member=holder.owner_is_member).status(now)
            if status != ACTIVE:
                raise Conflict(
                    f"Key {old.id} is {status} and cannot be rotated; create a new key instead"
                )
            check_grant(caller, self._owner_role(session, old), list(old.scopes))
            expires_at = bounded_by_maker(
                caller,
                _expiry(expires_in, now) if expires_in is not None else key_term(old).expires_at,
                is_test=old.is_test,
                asked=expires_in is not None,
            )
            key_policy(holder.org).check(expires_at, now)
            issued = self._mint(
                session,
                holder=holder,
                name=_validated_name(name) if name is not None else old.name,
                scopes=list(old.scopes),
                expires_at=expires_at,
                is_test=old.is_test,
                project_id=old.project_id,
                rotated_from_id=old.id,
                rate_limit=old.rate_limit,
                use=KeyUse(old.allow_browser, old.allowed_cidrs, is_canary=False),
            )
            old.revoked_at = now + grace
            old.revoked_reason = REVOKED_BY_ROTATION
            old.rotated_to_id = issued.view.id
            self._audit(
                session,
                caller,
                "api_key.rotated",
                _view(old, holder, now),
                context,
                {"successorId": issued.view.id, "gracePeriodSeconds": int(grace.total_seconds())},
            )
            session.commit()
        kind = EventKind.KEY_REVOKED if not grace else EventKind.KEY_CHANGED
        self._bus.publish(CredentialEvent(kind, old.org_id, key_id=old.id))
        return issued

    # -- helpers ---------------------------------------------------------------

    def _visible(
        self, session: Session, caller: Principal, key_id: str
    ) -> tuple[ApiKey, KeyHolder]:
        key = api_keys.find(session, key_id)
        if key is None or key.org_id != caller.org_id:
            raise NotFound(f"No API key {key_id!r}")
        if not caller.is_admin and key.owner_user_id != caller.user_id:
            raise NotFound(f"No API key {key_id!r}")
        holder = KeyHolder(
            organizations.user(session, key.owner_user_id),
            organizations.organization(session, key.org_id),
            owner_is_member=self._owner_role(session, key) != "",
        )
        return key, holder

    def _owner_role(self, session: Session, key: ApiKey) -> str:
        return organizations.role_in(session, key.org_id, key.owner_user_id) or ""

    def _audit(
        self,
        session: Session,
        caller: Principal,
        action: str,
        view: ApiKeyOut,
        context: RequestContext,
        details: dict[str, object] | None = None,
    ) -> None:
        audit.record(
            session,
            AuditRecord(
                action=action,
                outcome="success",
                org_id=caller.org_id,
                actor_type=caller.credential_type,
                actor_id=caller.credential_id,
                context=context,
                target_type="api_key",
                target_id=view.id,
                details={
                    "name": view.name,
                    "keyPrefix": view.key_prefix,
                    "scopes": view.scopes,
                    "actorUserId": caller.user_id,
                    **(details or {}),
                },
            ),
            self._clock.now(),
        )

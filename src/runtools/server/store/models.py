"""Tables, as typed SQLAlchemy 2 models. Secrets are never columns: keys are stored as hashes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    plan: Mapped[str] = mapped_column(String(20), default="free")
    created_at: Mapped[datetime]
    # Key policy: the longest a key may live ("90d"; None: no limit), and whether
    # every key must have an expiry.
    max_key_lifetime: Mapped[str | None] = mapped_column(String(16))
    require_key_expiry: Mapped[bool] = mapped_column(Boolean, default=False)
    revoke_unused_after_days: Mapped[int | None] = mapped_column(Integer)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id", name="uq_memberships_org_user"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class Project(Base):
    """A group of an organization's resources (keys, sandboxes); permissions stay org-wide.

    Ids are UUIDs, as ``projectId`` is on the wire. Each organization has
    exactly one default project, made with it and never deleted.
    """

    __tablename__ = "projects"
    __table_args__ = (
        UniqueConstraint("org_id", "name", name="uq_projects_org_name"),
        Index(
            "uq_projects_org_default",
            "org_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str | None] = mapped_column(String(7))
    description: Mapped[str | None] = mapped_column(String(500))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Invitation(Base):
    """An invitation to join an organization. The token is stored as its SHA-256 only.

    Single use: ``accepted_at`` is set once, by a conditional update.
    """

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_org_id", "org_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # Normalized (lowercase): only the account with this address may accept.
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_user_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_by_user_id: Mapped[str | None] = mapped_column(String(40))
    revoked_at: Mapped[datetime | None]


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_org_owner", "org_id", "owner_user_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    owner_user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    project_id: Mapped[str | None] = mapped_column(String(36))
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # A revocation time in the future is a rotation grace period: the key is
    # "expiring" until then and refused from then on.
    revoked_at: Mapped[datetime | None]
    # Why: "revoked" (a revoke call), "rotated", "leaked" (secret scanning); None before 0012.
    revoked_reason: Mapped[str | None] = mapped_column(String(16))
    rotated_from_id: Mapped[str | None] = mapped_column(String(40))
    rotated_to_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    # Requests per minute; None means the organization plan's default.
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    # Accepted from a browser (a request with Origin or Sec-Fetch-Site).
    allow_browser: Mapped[bool] = mapped_column(Boolean, default=False)
    # Networks the key works from (canonical CIDR strings); None or empty: anywhere.
    allowed_cidrs: Mapped[list[str] | None] = mapped_column(JSON)
    # A honeytoken: never authenticates; every use is an alarm.
    is_canary: Mapped[bool] = mapped_column(Boolean, default=False)


class SshKey(Base):
    """A user's SSH public key, registered with one organization.

    Only the public half is ever held: ``public_key`` is ``TYPE BASE64``,
    the comment is kept apart. A key is registered once per organization
    (its fingerprint is unique there).
    """

    __tablename__ = "ssh_keys"
    __table_args__ = (
        UniqueConstraint("org_id", "fingerprint", name="uq_ssh_keys_org_fingerprint"),
        Index("ix_ssh_keys_org_owner", "org_id", "owner_user_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    owner_user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    key_type: Mapped[str] = mapped_column(String(32))
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class ApiKeyUsage(Base):
    """A key's requests and refusals on one day (UTC), summed from every node's flushes."""

    __tablename__ = "api_key_usage"

    key_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    rate_limited: Mapped[int] = mapped_column(Integer, default=0)
    last_address: Mapped[str | None] = mapped_column(String(64))


class AuditEvent(Base):
    """Append-only: the repository offers no update or delete."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_org_id", "org_id", "id"),
        # One event per place in the chain: two appends can never fork it.
        Index("ux_audit_events_seq", "seq", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(40))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(40))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    request_id: Mapped[str | None] = mapped_column(String(40))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(index=True)
    # The hash chain (domain/audit_chain.py): the event's place, the previous
    # event's hash, and this event's own.
    seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditChainHead(Base):
    """The newest event of the audit chain: one row, locked by every append."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class SigningKey(Base):
    """A key the service signs access tokens with. Old keys stay for verification."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(40), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_pem: Mapped[str] = mapped_column(String(4000))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    # After this, the key no longer signs; it verifies until tokens it signed expire.
    retired_at: Mapped[datetime | None]


class UserSession(Base):
    """A person signed in to one organization, from one client."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user", "user_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    client_name: Mapped[str] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(Base):
    """Single use: presenting a used one revokes its whole session."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class DeviceGrant(Base):
    """An OAuth 2.0 device authorization request (RFC 8628)."""

    __tablename__ = "device_grants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_code: Mapped[str] = mapped_column(String(8), index=True)
    client_id: Mapped[str] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    interval: Mapped[int]
    last_polled_at: Mapped[datetime | None]
    # pending -> approved | denied; approved -> consumed (tokens issued once)
    status: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(40))
    org_id: Mapped[str | None] = mapped_column(String(40))
    session_id: Mapped[str | None] = mapped_column(String(40))


class ExternalIdentity(Base):
    """A subject of an external OIDC issuer, mapped to a local user."""

    __tablename__ = "external_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_external_identity"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]


class ExternalOrganization(Base):
    """An organization claim of an external issuer, mapped to a local organization."""

    __tablename__ = "external_organizations"
    __table_args__ = (UniqueConstraint("issuer", "external_id", name="uq_external_org"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(300))
    external_id: Mapped[str] = mapped_column(String(300))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]


class ServiceSecret(Base):
    """A secret of the service itself (not of any user), created on first start."""

    __tablename__ = "service_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Node(Base):
    """A ``runtools serve`` node that has run sandboxes: where it answers, what it holds.

    Written by the node itself on start and at every heartbeat; marked lost by
    any live node once its heartbeat is older than the lost-after bound.
    """

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    # The base URL other nodes forward its sandboxes' requests to.
    url: Mapped[str] = mapped_column(String(500))
    memory_budget_mib: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    # Set when another node found it silent (its sandboxes were failed then).
    lost_at: Mapped[datetime | None]


class Sandbox(Base):
    """A sandbox's record. Environment values are never stored: only their names.

    A name is unique among an organization's sandboxes that are not
    destroyed, so a destroyed sandbox's name can be used again.
    """

    __tablename__ = "sandboxes"
    __table_args__ = (
        Index("ix_sandboxes_org_created", "org_id", "created_at", "id"),
        Index("ix_sandboxes_node_status", "node", "status"),
        Index(
            "uq_sandboxes_org_live_name",
            "org_id",
            "name",
            unique=True,
            sqlite_where=text("status <> 'destroyed'"),
            postgresql_where=text("status <> 'destroyed'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    owner_user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(63))
    template: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # Why the sandbox is failed or in error, in words a user can act on.
    status_message: Mapped[str | None] = mapped_column(String(500))
    tags: Mapped[list[str]] = mapped_column(JSON)
    env_keys: Mapped[list[str]] = mapped_column(JSON)
    # Registered SSH keys of the organization let in besides its owner's and admins'.
    ssh_key_ids: Mapped[list[str] | None] = mapped_column(JSON)
    project_id: Mapped[str | None] = mapped_column(String(36))
    idle_timeout: Mapped[int | None] = mapped_column(Integer)
    vcpus: Mapped[float] = mapped_column(Float)
    memory_mib: Mapped[int] = mapped_column(Integer)
    disk_mib: Mapped[int] = mapped_column(Integer)
    # The service node whose driver runs the sandbox's processes.
    node: Mapped[str] = mapped_column(String(255))
    last_activity_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    destroyed_at: Mapped[datetime | None]


class SandboxTag(Base):
    """One row per tag, so ``?tags=a,b`` filters in SQL on every database."""

    __tablename__ = "sandbox_tags"

    sandbox_id: Mapped[str] = mapped_column(
        ForeignKey("sandboxes.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class IdempotencyRecord(Base):
    """The outcome of one create call, kept so a retry gets the same answer.

    ``lookup_hash`` is SHA-256 of the caller's credential id and the
    ``Idempotency-Key``; ``sealed_response`` is the response encrypted under
    a key derived from the ``Idempotency-Key`` itself, which is never stored,
    so this table alone cannot reveal a secret the response carried.
    """

    __tablename__ = "idempotency_records"

    lookup_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # in_flight -> done; a failed call deletes its record so a retry runs again.
    state: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None]
    sealed_response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuthFailure(Base):
    """One failed guess (a sign-in, a device user code), for throttling on every node.

    ``throttle`` names what counts it (``sign-in:account``, ``device:ip``, …);
    ``subject`` is SHA-256 of who (an email, an address, a user id) with that
    name: the table never holds what a person typed. ``failed_at`` is seconds
    since the epoch. A throttle's rows older than its window are deleted as
    new failures arrive.
    """

    __tablename__ = "auth_failures"
    __table_args__ = (
        Index("ix_auth_failures_subject_failed_at", "subject", "failed_at"),
        Index("ix_auth_failures_throttle_failed_at", "throttle", "failed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    throttle: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[float] = mapped_column(Float)


class WebFlash(Base):
    """Something a dashboard page shows once, after a redirect: a new key's secret.

    ``id`` is SHA-256 of the one-time reference the browser holds (a cookie);
    ``sealed`` is encrypted under a key derived from that reference, which is
    never stored, so this table alone cannot reveal the secret. Taking a flash
    deletes it; one left untaken is deleted once past ``expires_at``.
    """

    __tablename__ = "web_flashes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)

"""Typed views of what the server returns.

Attributes are snake_case; the wire is camelCase. Every model keeps fields
it does not know (``extra="allow"``) so a newer server never breaks an older
client, and enumerations such as ``ApiKey.status`` are plain strings for the
same reason. Datetimes arrive as ISO 8601 UTC strings and become aware
``datetime`` objects.

These are the one declaration of the shapes they read (names, aliases,
types, docs): the server builds its own, stricter models from them (see
``runtools.server.domain.wire``). A field typed ``Sent[T]`` is one the
server always sends, never null; it is ``None`` here only when a server
left it out. Nothing here imports the server.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = [
    "ApiKey",
    "AuditLogEntry",
    "BlastRadius",
    "BlastRadiusAction",
    "CreatedApiKey",
    "CurrentCredential",
    "DeletedProject",
    "DeviceApproval",
    "DeviceAuthorization",
    "ExecChunk",
    "ExecExit",
    "ExecResult",
    "FileEntry",
    "Invitation",
    "IssuedInvitation",
    "KeyUsageDay",
    "Me",
    "Member",
    "OrgMembership",
    "OrgPolicy",
    "Organization",
    "Project",
    "RevokedApiKey",
    "RotatedApiKey",
    "RunToolsModel",
    "SandboxInfo",
    "SandboxResources",
    "Session",
    "SessionTokens",
    "SshAccess",
    "SshKey",
    "Template",
    "User",
    "WrittenArchive",
]


_T = TypeVar("_T")


class AlwaysSent:
    """The mark of ``Sent[T]``: the server always sends the field, never null."""

    def __repr__(self) -> str:
        return "ALWAYS_SENT"


ALWAYS_SENT = AlwaysSent()

#: A field the server always sends as a ``T``; ``None`` only if a server left it out.
Sent = Annotated[_T | None, ALWAYS_SENT]


class RunToolsModel(BaseModel):
    """Base of every response model."""

    model_config = ConfigDict(
        extra="allow",
        alias_generator=to_camel,
        populate_by_name=True,
    )


class Organization(RunToolsModel):
    id: str
    name: str | None = None


class User(RunToolsModel):
    id: str
    email: str | None = None
    display_name: str | None = None
    role: str | None = None


class CurrentCredential(RunToolsModel):
    """The credential that made the request: an API key or a session."""

    type: str
    """``"api_key"`` or ``"session"``."""
    id: str | None = None
    name: str | None = None
    key_prefix: str | None = None
    scopes: list[str] = []
    expires_at: datetime | None = None
    is_test: bool = False
    """True for an ``rt_test_`` key."""


class Me(RunToolsModel):
    """``GET /v1/me``: who the caller is and what it may do."""

    organization: Organization
    user: User | None = None
    credential: CurrentCredential
    effective_scopes: list[str] = []
    """The credential's scopes intersected with the owner's current role."""


class ApiKey(RunToolsModel):
    """An API key as listed: everything except the secret."""

    # The docs below are the fields' descriptions, in this model and on the wire.
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    name: str
    key_prefix: str
    """The first characters of the key, enough to tell keys apart."""
    scopes: list[str] = []
    project_id: str | None = None
    is_test: bool = False
    """True for an ``rt_test_`` key."""
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    """When the key was revoked; in the future while a rotation's grace period runs."""
    revoked_reason: str | None = None
    """Why it was revoked: ``"revoked"`` (a revoke call), ``"rotated"`` (replaced by a
    rotation), ``"leaked"`` (reported public by secret scanning, and revoked at once) or
    ``"unused"`` (unused for longer than its organization's policy allows);
    null while it is not revoked, and for keys revoked before the reason was recorded."""
    created_at: Sent[datetime] = None
    status: Sent[str] = None
    """``"active"``, ``"expiring"``, ``"expired"``, ``"revoked"``, ``"owner_removed"``
    (its owner is no longer a member of its organization) or ``"canary"`` (a honeytoken)."""
    org_id: Sent[str] = None
    """The organization the key belongs to and acts for."""
    org_name: Sent[str] = None
    """That organization's name (as of this response)."""
    owner_user_id: Sent[str] = None
    owner_display_name: str | None = None
    owner_email: Sent[str] = None
    rotated_from_id: str | None = None
    """The key this one replaced, if it came from a rotation."""
    rotated_to_id: str | None = None
    """The key that replaced this one, if it was rotated."""
    rate_limit: int | None = None
    """Requests per minute; null means the organization plan's default."""
    allow_browser: bool = False
    """Accepted from a browser (a request with ``Origin`` or ``Sec-Fetch-Site``); otherwise
    such a request is a 403."""
    allowed_cidrs: list[str] = []
    """Networks the key works from (``203.0.113.0/24``, ``2001:db8::/32``); empty: anywhere."""
    is_canary: bool = False
    """A honeytoken: it never authenticates, and every use is a high-severity audit event
    (``api_key.canary_used``) naming the address it came from."""

    @property
    def ends_at(self) -> datetime | None:
        """When the key stops (or stopped) working: ``expires_at`` or ``revoked_at``,
        whichever comes first; while a rotation's grace runs (``status`` is
        ``"expiring"``) that is the grace's end. None: nothing ends it yet."""
        ends = [at for at in (self.expires_at, self.revoked_at) if at is not None]
        return min(ends) if ends else None


class IssuedApiKey(ApiKey):
    """A new key together with its secret, which the server shows only this once."""

    # The ``data`` of a create or rotate response, as sent; what the SDK returns
    # (``CreatedApiKey``) adds the reminder sent beside it.

    key: str
    """The secret (``rt_live_…``), shown in this response only: store it now."""

    def __repr_args__(self) -> Any:
        # Keep the secret out of logs and tracebacks that print the model.
        for name, value in super().__repr_args__():
            yield name, ("**********" if name == "key" else value)


class CreatedApiKey(IssuedApiKey):
    """A new key together with its secret, which the server shows only this once."""

    message: str | None = None
    """The server's reminder to store the key, from beside the response's ``data``."""


class RotatedApiKey(CreatedApiKey):
    """The successor key from a rotation, with its secret (``rotated_from_id`` is set)."""


class KeyUsageDay(RunToolsModel):
    """A key's use on one day (UTC): ``GET /v1/api-keys/{id}/usage``."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    day: Sent[date] = None
    requests: int = 0
    """Requests the key authenticated, those then refused for the rate limit included
    (each counted by the node that received it)."""
    invalid: int = 0
    """Uses refused as invalid: revoked, expired, its owner gone, outside its networks,
    sent from a browser it refuses."""
    rate_limited: int = 0
    """Requests refused with 429 for its rate limit."""
    last_address: str | None = None
    """The address of the day's latest use checked in full (each node checks a key in
    full at least every ``RUNTOOLS_AUTH_CACHE_TTL_SECONDS`` while it is used, and checks
    every refused use); null if none was seen."""


class BlastRadiusAction(RunToolsModel):
    """One kind of audited act, and how often a key did it."""

    action: str
    count: int = 0


class BlastRadius(RunToolsModel):
    """What a key did lately, from the audit log: the revoke reply's ``meta.blastRadius``.

    Every audited act with the key as its actor since ``since`` (30 days
    before the revoke): calls that changed something (sandboxes, keys,
    members...) and its refusals (failed sign-ins, denied calls). Reads are
    not audited, so they are not here; ``lastUsedAt`` on the key tells when it
    was last used at all.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    since: Sent[datetime] = None
    events: int = 0
    """Audited acts in all, refusals included."""
    refusals: int = 0
    """Of those, the ones that were refused."""
    actions: list[BlastRadiusAction] = []
    """Each action (``sandbox.exec``, ``api_key.created``...) and its count, most first."""
    targets: int = 0
    """Distinct things acted on (sandboxes, keys, members...)."""
    addresses: list[str] = []
    """Source addresses it was used from, most recent first (at most 10)."""
    last_event_at: datetime | None = None


class RevokedApiKey(ApiKey):
    """A key just revoked, with what it did lately (SDK only: read from the reply's ``meta``)."""

    blast_radius: BlastRadius | None = None


class OrgMembership(RunToolsModel):
    """An organization you belong to, with your role in it (``GET /v1/organizations``)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    name: Sent[str] = None
    role: Sent[str] = None
    """Your role in it: ``"admin"`` or ``"member"``."""
    plan: Sent[str] = None
    created_at: Sent[datetime] = None
    joined_at: Sent[datetime] = None
    """When you became a member."""
    current: bool = False
    """True for the organization the calling credential acts for."""


class OrgPolicy(RunToolsModel):
    """What an organization's admins require of its keys (``/v1/organizations/{id}/policy``)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    org_id: str
    max_key_lifetime: str | None = None
    """The longest a key may live from when it is made or rotated (``"90d"``, ``"1y"``);
    asking for longer, or for a key that never expires, is a 403 saying until when.
    Null: no limit."""
    require_key_expiry: bool = False
    """Every key must have an expiry (``expiresIn`` on create, or one carried by rotation)."""
    revoke_unused_after_days: int | None = None
    """A key not used for this many days (since its last use, or its creation if never
    used) is revoked, with ``revokedReason: "unused"``; checked hourly. Null: never."""


class Member(RunToolsModel):
    """A member of an organization (``GET /v1/organizations/{id}/members``)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    user_id: str
    email: Sent[str] = None
    display_name: str | None = None
    role: Sent[str] = None
    """``"admin"`` or ``"member"``."""
    joined_at: Sent[datetime] = None


class Invitation(RunToolsModel):
    """An invitation to join an organization; its token is never listed."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    org_id: Sent[str] = None
    email: Sent[str] = None
    """Who may accept it: the account with this email address."""
    role: Sent[str] = None
    """The role the invitee gets: ``"admin"`` or ``"member"``."""
    status: Sent[str] = None
    """``"pending"``, ``"accepted"``, ``"expired"`` or ``"revoked"``."""
    invited_by_user_id: Sent[str] = None
    created_at: Sent[datetime] = None
    expires_at: Sent[datetime] = None
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None


class IssuedInvitation(Invitation):
    """A new invitation with its single-use token, which the server shows only this once."""

    token: str
    """The secret (``rt_inv_…``) the invitee accepts with (``runtools invite accept``);
    shown in this response only."""

    def __repr_args__(self) -> Any:
        return _hide({"token"}, super().__repr_args__())


class Project(RunToolsModel):
    """A group of an organization's keys and sandboxes (``/v1/projects``).

    Grouping only: who may do what stays organization-wide.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    """A UUID: what ``projectId`` names on keys and sandboxes."""
    name: Sent[str] = None
    color: str | None = None
    """``#rrggbb``, for a dashboard to show the project by."""
    description: str | None = None
    is_default: bool = False
    """True for the organization's default project, which is never deleted."""
    org_id: Sent[str] = None
    created_at: Sent[datetime] = None
    updated_at: Sent[datetime] = None


class DeletedProject(Project):
    """A deleted project, and how much of what it grouped moved to the default project."""

    moved_to: Sent[str] = None
    """The id of the default project, which now groups what this one did."""
    moved_api_keys: int = 0
    moved_sandboxes: int = 0


class SshKey(RunToolsModel):
    """An SSH public key registered with the organization (``/v1/ssh-keys``).

    Only the public half is held; what the server keeps of the key is its
    fingerprint, type and comment here.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    name: Sent[str] = None
    fingerprint: Sent[str] = None
    """``SHA256:`` and unpadded base64, as ``ssh-keygen -lf`` prints it."""
    key_type: Sent[str] = None
    """``ssh-ed25519``, ``ecdsa-sha2-nistp256`` (``384``, ``521``) or ``ssh-rsa``."""
    comment: str | None = None
    """The comment after the key data (often ``user@host``), as pasted."""
    created_at: Sent[datetime] = None
    last_used_at: datetime | None = None
    """When the key last opened an SSH session into a sandbox."""
    owner_user_id: Sent[str] = None


class SshAccess(RunToolsModel):
    """How to reach a sandbox over SSH (``GET /v1/sandboxes/{id}/ssh``)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    host: Sent[str] = None
    port: Sent[int] = None
    user: Sent[str] = None
    """The SSH user: the sandbox's id."""
    command: Sent[str] = None
    """An ``ssh`` command line that opens a shell in the sandbox."""


class AuditLogEntry(RunToolsModel):
    id: str
    action: str
    outcome: Sent[str] = None
    reason: str | None = None
    actor_type: Sent[str] = None
    actor_id: str | None = None
    org_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    details: Sent[dict[str, Any]] = None
    created_at: Sent[datetime] = None


class SandboxResources(RunToolsModel):
    vcpus: float = 1.0
    memory: int = 512
    """MiB."""
    disk: int = 512
    """MiB."""


class SandboxInfo(RunToolsModel):
    """A sandbox's record. :class:`~runtools.Sandbox` adds the methods that act on it."""

    id: str
    name: str | None = None
    template: str | None = None
    status: str
    """``running``, ``paused``, ``destroyed``, ``failed``, ``error`` or a transitional one."""
    status_message: str | None = None
    tags: list[str] = []
    project_id: str | None = None
    mounts: list[Any] = []
    env_keys: list[str] = []
    """Names of the sandbox's environment variables; values are never returned."""
    idle_timeout: int | None = None
    resources: SandboxResources | None = None
    owner_user_id: str | None = None
    node: str | None = None
    last_activity_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    destroyed_at: datetime | None = None
    ssh_keys: list[str] = []
    """Ids of registered SSH keys let in besides the owner's and the admins'."""


class Template(RunToolsModel):
    """A root filesystem sandboxes start from (``rt.templates.list()``).

    Pass its ``name``, or one of its ``aliases``, as a sandbox's ``template``.
    """

    name: str
    kind: Sent[str] = None
    """``host`` (the node's own userland) or ``imported`` (a root filesystem imported)."""
    description: Sent[str] = None
    """What it is: the ``PRETTY_NAME`` of its ``os-release`` when it has one."""
    is_default: bool = False
    """The template of a sandbox created without one."""
    aliases: list[str] = []
    """Other names that stand for it (``base-ubuntu`` for the default, unless imported)."""
    size: int = 0
    """Bytes of its regular files (0 for the host's)."""
    files: int = 0
    """Its regular files (0 for the host's)."""
    imported_at: datetime | None = None


class ExecResult(RunToolsModel):
    """How a command ended, with its output (capped per stream by the server)."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int
    """128+N when the command was killed by signal N."""
    duration_ms: int = 0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False


class ExecChunk(RunToolsModel):
    """A piece of a streamed command's output."""

    stream: str
    """``"stdout"`` or ``"stderr"``."""
    data: str


class ExecExit(RunToolsModel):
    """The last event of a streamed command."""

    exit_code: int
    duration_ms: int = 0
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False


class FileEntry(RunToolsModel):
    name: str
    path: str
    type: str
    """``file``, ``directory``, ``symlink`` or ``other``."""
    size: int = 0
    modified_at: datetime | None = None


class WrittenArchive(RunToolsModel):
    """What an uploaded archive put into a sandbox."""

    path: str
    """The directory it was unpacked into, absolute."""
    files: int = 0
    """Regular files written."""
    size: int = 0
    """Their bytes."""


def _hide(names: set[str], args: Any) -> Any:
    for name, value in args:
        yield name, ("**********" if name in names and value else value)


class Session(RunToolsModel):
    """One signed-in session of yours (``rt.sessions.list()``)."""

    id: str
    client_name: str | None = None
    org: Organization | None = None
    ip: str | None = None
    user_agent: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    current: bool = False
    """True for the session making the request."""


class SessionTokens(RunToolsModel):
    """An access token and its single-use refresh token, from a sign-in."""

    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = 0
    """Seconds until the access token expires."""
    session_id: str | None = None
    org: Organization | None = None
    """The organization the session acts in (sign-in and switch-org answers carry it)."""

    def __repr_args__(self) -> Any:
        return _hide({"access_token", "refresh_token"}, super().__repr_args__())


class DeviceAuthorization(RunToolsModel):
    """A started device sign-in: show ``user_code`` and ``verification_uri`` to the person."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None = None
    expires_in: int = 300
    interval: int = 5
    """Seconds to wait between polls."""

    def __repr_args__(self) -> Any:
        return _hide({"device_code"}, super().__repr_args__())


class DeviceApproval(RunToolsModel):
    """The device sign-in you approved or denied."""

    user_code: str
    client_id: str | None = None
    ip: str | None = None
    status: str | None = None
    """``"approved"`` or ``"denied"``."""

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

from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = [
    "ApiKey",
    "AuditLogEntry",
    "CreatedApiKey",
    "CurrentCredential",
    "DeviceApproval",
    "DeviceAuthorization",
    "ExecChunk",
    "ExecExit",
    "ExecResult",
    "FileEntry",
    "Me",
    "Organization",
    "RotatedApiKey",
    "RunToolsModel",
    "SandboxInfo",
    "SandboxResources",
    "Session",
    "SessionTokens",
    "User",
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
    created_at: Sent[datetime] = None
    status: Sent[str] = None
    """``"active"``, ``"expiring"``, ``"expired"`` or ``"revoked"``."""
    owner_user_id: Sent[str] = None
    owner_display_name: str | None = None
    owner_email: Sent[str] = None
    rotated_from_id: str | None = None
    """The key this one replaced, if it came from a rotation."""
    rotated_to_id: str | None = None
    """The key that replaced this one, if it was rotated."""
    rate_limit: int | None = None
    """Requests per minute; null means the organization plan's default."""


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

"""runtools: API keys, sessions and sandboxes for the RunTools API.

The Python SDK::

    from runtools import RunTools

    rt = RunTools()   # RUNTOOLS_API_KEY, else the login stored by `runtools login`
    rt.me()

Importing this package never imports the API service's dependencies; those
live under ``runtools.server`` and need the ``server`` extra.
"""

from runtools._client import AsyncRunTools, RunTools
from runtools._credentials import (
    AccessTokenCredential,
    ApiKeyCredential,
    StoredSessionCredential,
)
from runtools._device_login import AsyncDeviceLogin, DeviceLogin
from runtools._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeviceLoginError,
    ExecStreamError,
    InternalServerError,
    LoginStoreError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunToolsError,
)
from runtools._login_store import LoginStore, StoredLogin
from runtools._models import (
    ApiKey,
    AuditLogEntry,
    BlastRadius,
    BlastRadiusAction,
    CreatedApiKey,
    CurrentCredential,
    DeletedProject,
    DeviceApproval,
    DeviceAuthorization,
    ExecChunk,
    ExecExit,
    ExecResult,
    FileEntry,
    Invitation,
    IssuedInvitation,
    KeyUsageDay,
    Me,
    Member,
    Organization,
    OrgMembership,
    OrgPolicy,
    Project,
    RevokedApiKey,
    RotatedApiKey,
    SandboxResources,
    Session,
    SessionTokens,
    SshAccess,
    SshKey,
    Template,
    User,
    WrittenArchive,
)
from runtools._pagination import AsyncPager, CursorPage, SyncPager
from runtools._types import NOT_GIVEN, NotGiven
from runtools._version import __version__
from runtools.resources.sandboxes import AsyncSandbox, Sandbox

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AccessTokenCredential",
    "ApiKey",
    "ApiKeyCredential",
    "AsyncDeviceLogin",
    "AsyncPager",
    "AsyncRunTools",
    "AsyncSandbox",
    "AuditLogEntry",
    "AuthenticationError",
    "BadRequestError",
    "BlastRadius",
    "BlastRadiusAction",
    "ConflictError",
    "CreatedApiKey",
    "CurrentCredential",
    "CursorPage",
    "DeletedProject",
    "DeviceApproval",
    "DeviceAuthorization",
    "DeviceLogin",
    "DeviceLoginError",
    "ExecChunk",
    "ExecExit",
    "ExecResult",
    "ExecStreamError",
    "FileEntry",
    "InternalServerError",
    "Invitation",
    "IssuedInvitation",
    "KeyUsageDay",
    "LoginStore",
    "LoginStoreError",
    "Me",
    "Member",
    "MissingCredentialsError",
    "NotFoundError",
    "NotGiven",
    "OrgMembership",
    "OrgPolicy",
    "Organization",
    "PermissionDeniedError",
    "Project",
    "RateLimitError",
    "RevokedApiKey",
    "RotatedApiKey",
    "RunTools",
    "RunToolsError",
    "Sandbox",
    "SandboxResources",
    "Session",
    "SessionTokens",
    "SshAccess",
    "SshKey",
    "StoredLogin",
    "StoredSessionCredential",
    "SyncPager",
    "Template",
    "User",
    "WrittenArchive",
    "__version__",
]

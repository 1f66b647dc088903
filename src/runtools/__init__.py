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
    CreatedApiKey,
    CurrentCredential,
    DeviceApproval,
    DeviceAuthorization,
    ExecChunk,
    ExecExit,
    ExecResult,
    FileEntry,
    Me,
    Organization,
    RotatedApiKey,
    SandboxResources,
    Session,
    SessionTokens,
    User,
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
    "ConflictError",
    "CreatedApiKey",
    "CurrentCredential",
    "CursorPage",
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
    "LoginStore",
    "LoginStoreError",
    "Me",
    "MissingCredentialsError",
    "NotFoundError",
    "NotGiven",
    "Organization",
    "PermissionDeniedError",
    "RateLimitError",
    "RotatedApiKey",
    "RunTools",
    "RunToolsError",
    "Sandbox",
    "SandboxResources",
    "Session",
    "SessionTokens",
    "StoredLogin",
    "StoredSessionCredential",
    "SyncPager",
    "User",
    "__version__",
]

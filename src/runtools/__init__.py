"""runtools: API keys, sessions and sandboxes for the RunTools API.

The Python SDK::

    from runtools import RunTools

    rt = RunTools()   # reads RUNTOOLS_API_KEY
    rt.me()

Importing this package never imports the API service's dependencies; those
live under ``runtools.server`` and need the ``server`` extra.
"""

from runtools._client import AsyncRunTools, RunTools
from runtools._credentials import AccessTokenCredential, ApiKeyCredential
from runtools._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ExecStreamError,
    InternalServerError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunToolsError,
)
from runtools._models import (
    ApiKey,
    AuditLogEntry,
    CreatedApiKey,
    CurrentCredential,
    ExecChunk,
    ExecExit,
    ExecResult,
    FileEntry,
    Me,
    Organization,
    RotatedApiKey,
    SandboxResources,
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
    "ExecChunk",
    "ExecExit",
    "ExecResult",
    "ExecStreamError",
    "FileEntry",
    "InternalServerError",
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
    "SyncPager",
    "User",
    "__version__",
]

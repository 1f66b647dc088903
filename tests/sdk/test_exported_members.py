"""The public names of ``runtools``, pinned: adding or removing one is a decision."""

from __future__ import annotations

import runtools

PUBLIC_NAMES = {
    "SandboxResources",
    "Sandbox",
    "FileEntry",
    "ExecStreamError",
    "ExecResult",
    "ExecExit",
    "ExecChunk",
    "AsyncSandbox",
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
    "AuditLogEntry",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "CreatedApiKey",
    "CurrentCredential",
    "CursorPage",
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
    "SyncPager",
    "User",
    "AsyncDeviceLogin",
    "DeviceApproval",
    "DeviceAuthorization",
    "DeviceLogin",
    "DeviceLoginError",
    "LoginStore",
    "LoginStoreError",
    "Session",
    "SessionTokens",
    "StoredLogin",
    "StoredSessionCredential",
    "__version__",
}


def test_all_is_exactly_the_public_names() -> None:
    assert set(runtools.__all__) == PUBLIC_NAMES
    assert len(runtools.__all__) == len(PUBLIC_NAMES)


def test_every_exported_name_exists() -> None:
    for name in runtools.__all__:
        assert hasattr(runtools, name), name


def test_no_other_public_names_leak() -> None:
    # Submodules appear as attributes once imported; everything else must be in __all__.
    public = {
        name
        for name in vars(runtools)
        if not name.startswith("_") and name not in {"resources", "server", "cli"}
    }
    assert public <= PUBLIC_NAMES

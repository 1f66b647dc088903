"""The public names of ``runtools``, pinned: adding or removing one is a decision."""

from __future__ import annotations

import runtools

PUBLIC_NAMES = {
    "SandboxResources",
    "Sandbox",
    "FileEntry",
    "WrittenArchive",
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
    "BlastRadius",
    "BlastRadiusAction",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "CreatedApiKey",
    "CurrentCredential",
    "CursorPage",
    "InternalServerError",
    "Invitation",
    "IssuedInvitation",
    "KeyUsageDay",
    "Me",
    "Member",
    "OrgMembership",
    "OrgPolicy",
    "Project",
    "DeletedProject",
    "Template",
    "MissingCredentialsError",
    "NotFoundError",
    "NotGiven",
    "Organization",
    "PermissionDeniedError",
    "RateLimitError",
    "RevokedApiKey",
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
    "SshAccess",
    "SshKey",
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
        if not name.startswith("_") and name not in {"resources", "server", "cli", "verify"}
    }
    assert public <= PUBLIC_NAMES

"""Response models read the camelCase wire and tolerate what they do not know."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from runtools import ApiKey, CreatedApiKey, Me

WIRE_KEY = {
    "id": "key_1",
    "name": "ci",
    "keyPrefix": "rt_live_abcd",
    "scopes": ["*"],
    "projectId": None,
    "expiresAt": "2025-01-01T00:00:00Z",
    "lastUsedAt": None,
    "revokedAt": None,
    "createdAt": "2024-01-01T00:00:00Z",
    "status": "expiring",
    "ownerUserId": "usr_1",
    "ownerDisplayName": "Ada",
    "ownerEmail": "ada@example.com",
    "isTest": False,
}


def test_camel_case_fields_become_snake_case_attributes() -> None:
    key = ApiKey.model_validate(WIRE_KEY)
    assert key.key_prefix == "rt_live_abcd"
    assert key.owner_display_name == "Ada"
    assert key.expires_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert key.is_test is False


def test_models_can_be_built_by_attribute_name() -> None:
    assert ApiKey(id="k", name="n", key_prefix="rt_live_x").key_prefix == "rt_live_x"


def test_unknown_fields_and_values_are_kept() -> None:
    key = ApiKey.model_validate({**WIRE_KEY, "status": "suspended", "region": "eu"})
    assert key.status == "suspended"
    assert key.model_extra == {"region": "eu"}


def test_dumping_by_alias_gives_back_the_wire_shape() -> None:
    assert ApiKey.model_validate(WIRE_KEY).model_dump(by_alias=True, mode="json")["keyPrefix"] == (
        "rt_live_abcd"
    )


def test_the_secret_is_hidden_from_repr_but_readable() -> None:
    created = CreatedApiKey.model_validate({**WIRE_KEY, "key": "rt_live_SECRET"})
    assert "SECRET" not in repr(created)
    assert created.key == "rt_live_SECRET"


def test_me_reads_a_session_without_a_key_prefix() -> None:
    me = Me.model_validate(
        {
            "organization": {"id": "org_1", "name": "Acme"},
            "user": {"id": "usr_1", "email": "a@b.c", "role": "member"},
            "credential": {"type": "session", "id": "ses_1", "scopes": [], "expiresAt": None},
            "effectiveScopes": ["sandbox:read"],
        }
    )
    assert me.credential.key_prefix is None
    assert me.effective_scopes == ["sandbox:read"]


def test_every_field_the_service_sends_has_a_typed_attribute() -> None:
    """One wire contract: a field added to a response must reach the SDK's model too."""
    import runtools._models as sdk
    from runtools.server.app import create_app, runtime_of
    from runtools.server.settings import Settings

    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=Path(home), _env_file=None))
        schemas = app.openapi()["components"]["schemas"]
        runtime_of(app).close()
    models: dict[str, type[sdk.RunToolsModel]] = {
        "ApiKeyOut": sdk.ApiKey,
        "IssuedApiKeyOut": sdk.CreatedApiKey,
        "AuditEventOut": sdk.AuditLogEntry,
        "Me": sdk.Me,
        "OrganizationRef": sdk.Organization,
        "UserRef": sdk.User,
        "CredentialRef": sdk.CurrentCredential,
        "SandboxOut": sdk.SandboxInfo,
        "ResourcesOut": sdk.SandboxResources,
        "ExecOut": sdk.ExecResult,
        "FileEntryOut": sdk.FileEntry,
        "WrittenArchive": sdk.WrittenArchive,
        "SessionOut": sdk.Session,
        "Tokens": sdk.SessionTokens,
        "DeviceAuthorizationResponse": sdk.DeviceAuthorization,
        "DeviceOut": sdk.DeviceApproval,
    }
    untyped = {}
    for schema, model in models.items():
        # A field is read by its camelCase alias or, as in OAuth's snake_case replies, its name.
        readable = {name for name in model.model_fields} | {
            field.alias for field in model.model_fields.values() if field.alias
        }
        missing = set(schemas[schema]["properties"]) - readable
        if missing:
            untyped[f"{schema} -> {model.__name__}"] = sorted(missing)
    assert untyped == {}


def test_a_key_ends_when_its_grace_ends_if_that_comes_before_its_expiry() -> None:
    grace_end = "2026-01-15T13:00:00Z"
    base = {"id": "key_1", "name": "ci", "keyPrefix": "rt_live_abcd", "revokedAt": grace_end}
    in_grace = ApiKey.model_validate({**base, "status": "expiring", "expiresAt": None})
    assert in_grace.expires_at is None
    assert in_grace.ends_at == datetime(2026, 1, 15, 13, 0, tzinfo=UTC)
    sooner = ApiKey.model_validate(
        {**base, "status": "expiring", "expiresAt": "2026-01-15T12:30:00Z"}
    )
    assert sooner.ends_at == datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
    revoked = ApiKey.model_validate({**base, "status": "revoked", "expiresAt": None})
    assert revoked.ends_at == datetime(2026, 1, 15, 13, 0, tzinfo=UTC)  # it ended then
    plain = ApiKey.model_validate({"id": "key_2", "name": "x", "keyPrefix": "rt_live_e"})
    assert plain.ends_at is None

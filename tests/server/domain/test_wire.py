"""Sent shapes: the SDK's declaration of a response, made strict for the server to send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from runtools import _models as sdk
from runtools.server.domain.wire import sent_shape


@sent_shape
class ApiKeyOut(sdk.ApiKey):
    # As the key service declares its own.
    ...


KEY: dict[str, Any] = {
    "id": "key_1",
    "name": "ci",
    "key_prefix": "rt_live_abcd",
    "scopes": ["*"],
    "project_id": None,
    "is_test": False,
    "expires_at": None,
    "last_used_at": None,
    "revoked_at": None,
    "revoked_reason": None,
    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    "status": "active",
    "org_id": "org_1",
    "org_name": "acme",
    "owner_user_id": "user_1",
    "owner_display_name": None,
    "owner_email": "ada@example.com",
    "rotated_from_id": None,
    "rotated_to_id": None,
    "rate_limit": None,
    "allow_browser": False,
    "allowed_cidrs": [],
    "is_canary": False,
}


def test_the_server_shape_has_exactly_the_sdk_fields_under_the_same_aliases() -> None:
    assert list(ApiKeyOut.model_fields) == list(sdk.ApiKey.model_fields)
    for name, field in ApiKeyOut.model_fields.items():
        assert field.alias == sdk.ApiKey.model_fields[name].alias
        assert field.description == sdk.ApiKey.model_fields[name].description


def _refused(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as refused:
        ApiKeyOut(**fields)
    return [(str(e["loc"][0]), e["type"]) for e in refused.value.errors()]


def test_every_field_must_be_given_though_the_sdk_has_a_default_for_it() -> None:
    for name in ("scopes", "is_test", "rate_limit", "created_at"):
        given = {k: v for k, v in KEY.items() if k != name}
        sdk.ApiKey(**given)  # the SDK tolerates a server that left it out
        assert _refused(**given) == [(sdk.ApiKey.model_fields[name].alias, "missing")]


def test_a_field_the_server_always_sends_is_never_null() -> None:
    for name in ("created_at", "status", "owner_user_id", "owner_email"):
        assert getattr(sdk.ApiKey(**{**KEY, name: None}), name) is None
        [(refused, _)] = _refused(**{**KEY, name: None})
        assert refused == name
    assert ApiKeyOut(**{**KEY, "expires_at": None}).expires_at is None  # nullable stays so


def test_what_is_sent_is_the_camel_case_wire_and_nothing_unknown() -> None:
    sent = ApiKeyOut(**KEY, region="eu").model_dump(mode="json", by_alias=True)
    assert "region" not in sent
    assert sent["keyPrefix"] == "rt_live_abcd"
    assert sent["ownerEmail"] == "ada@example.com"
    assert sdk.ApiKey.model_validate(sent) == sdk.ApiKey(**KEY)  # the SDK reads it back


def test_the_schema_requires_every_field_and_carries_the_sdks_docs() -> None:
    schema = ApiKeyOut.model_json_schema(mode="serialization", by_alias=True)
    assert set(schema["required"]) == {f.alias for f in sdk.ApiKey.model_fields.values()}
    assert schema["properties"]["createdAt"] == {
        "format": "date-time",
        "title": "Createdat",
        "type": "string",
    }
    assert schema["properties"]["keyPrefix"]["description"] == (
        "The first characters of the key, enough to tell keys apart."
    )
    assert schema["description"] == sdk.ApiKey.__doc__


def test_methods_of_the_decorated_class_are_kept_and_its_docstring_describes_it() -> None:
    @sent_shape
    class EntryOut(sdk.AuditLogEntry):
        """An audit event, as sent."""

        def summary(self) -> str:
            return f"{self.action}: {self.outcome}"

    entry = EntryOut(
        id="evt_1", action="auth.failed", outcome="failure", reason="expired",
        actor_type="api_key", actor_id=None, org_id=None, target_type=None, target_id=None,
        ip=None, user_agent=None, request_id=None, details={},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    assert entry.summary() == "auth.failed: failure"
    assert EntryOut.model_json_schema()["description"] == "An audit event, as sent."

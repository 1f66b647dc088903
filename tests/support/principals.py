"""A ``Principal`` made directly, for unit tests of what consumes one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from runtools.server.domain.principal import Principal

ADA = Principal(
    org_id="org_1",
    org_name="acme",
    user_id="usr_1",
    user_email="ada@example.com",
    user_display_name=None,
    role="admin",
    credential_type="api_key",
    credential_id="key_1",
    credential_name="k",
    key_prefix="rt_live_abcd",
    scopes=("*",),
    expires_at=None,
    revokes_at=None,
)


def principal(**changes: Any) -> Principal:
    """Ada's live API key on the free plan, with ``changes``; a new object every call."""
    return replace(ADA, **changes)

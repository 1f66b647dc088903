"""A ``Principal`` made directly, for unit tests of what consumes one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from runtools.server.domain.key_term import KeyTerm
from runtools.server.domain.principal import Principal

ADA = Principal.for_api_key(
    org_id="org_1",
    org_name="acme",
    plan="free",
    user_id="usr_1",
    user_email="ada@example.com",
    user_display_name=None,
    role="admin",
    key_id="key_1",
    key_name="k",
    key_prefix="rt_live_abcd",
    scopes=("*",),
    is_test=False,
    rate_limit=None,
    term=KeyTerm(expires_at=None, revoked_at=None),
)


def principal(**changes: Any) -> Principal:
    """Ada's live API key on the free plan, with ``changes``; a new object every call."""
    return replace(ADA, **changes)

"""``Principal``: who is calling, on behalf of which organization, with what rights.

A principal is made by one constructor per kind of credential:
``Principal.for_api_key`` and ``Principal.for_session`` (our access tokens
and an external issuer's alike). They alone say what a kind implies (a
session's scopes are ``*``; only a key has a prefix, a rate limit of its
own, or a revocation ahead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from runtools.server.domain.key_term import KeyTerm, ends_at
from runtools.server.domain.roles import effective_scopes, role_permits
from runtools.server.domain.scopes import covers

API_KEY = "api_key"
SESSION = "session"


@dataclass(frozen=True, slots=True)
class Principal:
    org_id: str
    org_name: str
    user_id: str
    user_email: str
    user_display_name: str | None
    role: str
    credential_type: str
    credential_id: str
    credential_name: str
    key_prefix: str | None
    scopes: tuple[str, ...]
    expires_at: datetime | None
    # A future revocation: the credential was rotated and is in its grace period.
    revokes_at: datetime | None
    is_test: bool = False
    # Rate limiting: the organization's plan and the credential's own limit, if set.
    plan: str = "free"
    rate_limit: int | None = None

    @classmethod
    def for_api_key(
        cls,
        *,
        org_id: str,
        org_name: str,
        plan: str,
        user_id: str,
        user_email: str,
        user_display_name: str | None,
        role: str,
        key_id: str,
        key_name: str,
        key_prefix: str,
        scopes: Iterable[str],
        is_test: bool,
        rate_limit: int | None,
        term: KeyTerm,
    ) -> Principal:
        """The owner of an API key acting through it (``role``: theirs in the key's org)."""
        return cls(
            org_id=org_id,
            org_name=org_name,
            user_id=user_id,
            user_email=user_email,
            user_display_name=user_display_name,
            role=role,
            credential_type=API_KEY,
            credential_id=key_id,
            credential_name=key_name,
            key_prefix=key_prefix,
            scopes=tuple(scopes),
            expires_at=term.expires_at,
            revokes_at=term.revoked_at,
            is_test=is_test,
            plan=plan,
            rate_limit=rate_limit,
        )

    @classmethod
    def for_session(
        cls,
        *,
        org_id: str,
        org_name: str,
        plan: str,
        user_id: str,
        user_email: str,
        user_display_name: str | None,
        role: str,
        session_id: str,
        client_name: str,
        expires_at: datetime,
    ) -> Principal:
        """A signed-in person, until ``expires_at`` (their access token's expiry).

        A session carries every scope its user's role permits.
        """
        return cls(
            org_id=org_id,
            org_name=org_name,
            user_id=user_id,
            user_email=user_email,
            user_display_name=user_display_name,
            role=role,
            credential_type=SESSION,
            credential_id=session_id,
            credential_name=client_name,
            key_prefix=None,
            scopes=("*",),
            expires_at=expires_at,
            revokes_at=None,
            plan=plan,
        )

    def allows(self, scope: str) -> bool:
        return covers(self.scopes, scope) and role_permits(self.role, scope)

    @property
    def effective_scopes(self) -> list[str]:
        return effective_scopes(self.scopes, self.role)

    @property
    def ends_at(self) -> datetime | None:
        """When the credential stops working: its expiry or the end of a rotation grace."""
        return ends_at(self.expires_at, self.revokes_at)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

"""``VerifiedPrincipal``: who a verified credential stands for, as a service sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtools._scopes import covers


@dataclass(frozen=True, slots=True)
class VerifiedPrincipal:
    org_id: str
    user_id: str
    role: str
    #: ``api_key`` or ``session``.
    credential_type: str
    credential_id: str
    #: The credential's scopes capped by its owner's role, as the hub computed them.
    effective_scopes: tuple[str, ...]
    #: When the verification was made offline from a signed token (no hub call).
    offline: bool = False

    def allows(self, scope: str) -> bool:
        """May the credential use ``scope``? The hub's own grammar (``runtools._scopes``)."""
        return covers(self.effective_scopes, scope)

    @classmethod
    def from_me(cls, data: Mapping[str, Any]) -> VerifiedPrincipal:
        """From the hub's ``POST /v1/auth/verify`` reply (``GET /v1/me``'s shape)."""
        user = data.get("user") or {}
        credential = data["credential"]
        return cls(
            org_id=str(data["organization"]["id"]),
            user_id=str(user.get("id", "")),
            role=str(user.get("role", "")),
            credential_type=str(credential["type"]),
            credential_id=str(credential["id"]),
            effective_scopes=tuple(data.get("effectiveScopes") or ()),
        )

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> VerifiedPrincipal:
        """From a verified access token's claims: ``sub``, ``org``, ``role``, ``sid``, ``scope``."""
        return cls(
            org_id=str(claims["org"]),
            user_id=str(claims["sub"]),
            role=str(claims.get("role", "")),
            credential_type="session",
            credential_id=str(claims["sid"]),
            effective_scopes=tuple(str(claims.get("scope", "")).split()),
            offline=True,
        )

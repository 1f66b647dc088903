"""``Principal``: who is calling, on behalf of which organization, with what rights."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runtools.server.domain.roles import effective_scopes, role_permits
from runtools.server.domain.scopes import covers


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

    def allows(self, scope: str) -> bool:
        return covers(self.scopes, scope) and role_permits(self.role, scope)

    @property
    def effective_scopes(self) -> list[str]:
        return effective_scopes(self.scopes, self.role)

    @property
    def ends_at(self) -> datetime | None:
        """When the credential stops working: its expiry or the end of a rotation grace."""
        ends = [t for t in (self.expires_at, self.revokes_at) if t is not None]
        return min(ends) if ends else None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

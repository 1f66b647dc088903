"""Scopes: the catalog, the grammar, and pure checks over them.

Grammar: ``*`` (everything the owner's role allows), ``RESOURCE:*`` (every
action on a resource) and ``RESOURCE:ACTION``. A scope outside the catalog
is refused, never stored. Effective rights of a credential are its scopes
capped by its owner's current role (see ``roles``).

Service scopes (``SERVICE_SCOPES``: ``auth:verify``) are held only when
named: no wildcard covers them, so neither a person's ``*`` key nor a
session can act as another service's credential checker, and, since a
credential grants only what it holds, none can mint one through the API
(the operator does, ``runtools admin create-key --scopes auth:verify``).
"""

from __future__ import annotations

from collections.abc import Iterable

# The grammar itself is the SDK's, so a service verifying our credentials judges alike.
from runtools._scopes import ALL, SERVICE_SCOPES, covers, resource_of

__all__ = [
    "ALL",
    "CATALOG",
    "SERVICE_SCOPES",
    "UnknownScopeError",
    "covers",
    "is_subset",
    "normalize",
    "resource_of",
]

#: Every scope a credential may hold, with what it grants.
CATALOG: dict[str, str] = {
    "*": "Full access for the organization, within the owner's role",
    "sandbox:*": "Sandbox lifecycle and command execution",
    "sandbox:read": "List and inspect sandboxes",
    "sandbox:create": "Create sandboxes",
    "sandbox:write": "Pause, resume and destroy sandboxes",
    "sandbox:exec": "Run commands in sandboxes and use their files",
    "agent:*": "Agent management and runs",
    "agent:run": "Run agents and workflows",
    "agent:read": "Read agents and runs",
    "agent:write": "Manage agents",
    "workflow:*": "Workflow management, runs, triggers, and versions",
    "tool:*": "Tool Hub installs, credentials, and execution",
    "ssh-key:*": "SSH key management",
    "ssh-key:read": "List SSH keys",
    "ssh-key:write": "Add and remove SSH keys",
    "files:*": "Workspace files",
    "files:read": "Read workspace files",
    "files:write": "Write workspace files",
    "template:*": "Sandbox templates",
    "org:read": "Read the organization, its members and its audit log (admins)",
    "org:write": "Change organization settings (admins)",
    "org:members": "Manage organization members (admins)",
    "admin:*": "Organization administration (admins)",
    "admin:resources": "Org-wide views of every member's resources (admins)",
    "auth:verify": "Check other credentials for a service of the platform (never implied by *)",
}


class UnknownScopeError(ValueError):
    def __init__(self, unknown: list[str]) -> None:
        self.unknown = unknown
        super().__init__(
            f"Unknown scope(s): {', '.join(unknown)}. Valid scopes: {', '.join(CATALOG)}"
        )


def normalize(requested: Iterable[str] | None) -> list[str]:
    """Validate against the catalog, de-duplicate, sort; empty means ``["*"]``."""
    scopes = list(requested or [])
    if not scopes:
        return [ALL]
    unknown = sorted({s for s in scopes if s not in CATALOG})
    if unknown:
        raise UnknownScopeError(unknown)
    if ALL in scopes:
        # ``*`` stands for every scope but the service ones, which stay named beside it.
        return [ALL, *sorted(set(scopes) & SERVICE_SCOPES)]
    return sorted(set(scopes))


def is_subset(requested: Iterable[str], granted: Iterable[str]) -> list[str]:
    """The requested scopes that ``granted`` does not cover (empty: a subset)."""
    granted = list(granted)
    return [scope for scope in requested if not covers(granted, scope)]

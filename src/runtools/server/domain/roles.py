"""Roles and the ceiling each puts on a credential's scopes.

An admin's credentials can use any scope. A member's cannot use the
administrative ones, whatever the credential says: effective rights are the
credential's scopes intersected with the owner's *current* role, so demoting
an owner takes admin powers from their keys at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from runtools.server.domain.scopes import ALL, CATALOG, SERVICE_SCOPES, covers, resource_of


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


ADMIN_ONLY_SCOPES = frozenset({"org:write", "org:members", "admin:*", "admin:resources"})

_MEMBER_CEILING = tuple(
    sorted(
        scope
        for scope in CATALOG
        if scope != ALL
        and scope not in ADMIN_ONLY_SCOPES
        and scope not in SERVICE_SCOPES  # held only when named, never through ``*``
        # A resource wildcard already stands for its actions.
        and (scope.endswith(":*") or f"{resource_of(scope)}:*" not in CATALOG)
    )
)


def role_permits(role: str, scope: str) -> bool:
    """May a credential owned by someone with ``role`` use ``scope``?"""
    if role == Role.ADMIN:
        return True
    if role == Role.MEMBER:
        return scope not in ADMIN_ONLY_SCOPES
    return False


def effective_scopes(scopes: Iterable[str], role: str) -> list[str]:
    """The scopes a credential can actually use, for display and minting checks."""
    scopes = list(scopes)
    if role == Role.ADMIN:
        return sorted(scopes)
    if role != Role.MEMBER:
        return []
    result: set[str] = set()
    for scope in scopes:
        if scope == ALL:
            result.update(_MEMBER_CEILING)
        elif role_permits(role, scope):
            result.add(scope)
    # Drop actions already covered by a wildcard in the result.
    return sorted(s for s in result if s.endswith(":*") or not covers(result - {s}, s))

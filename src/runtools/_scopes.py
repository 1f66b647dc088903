"""The scope grammar: which granted scopes cover a required one. The one copy.

``*`` covers every scope but the service ones (``SERVICE_SCOPES``: held
only when named); ``RESOURCE:*`` covers the resource's wildcard and each
``RESOURCE:ACTION``. The server's scope rules (``runtools.server.domain.scopes``:
the catalog, normalizing) build on this; ``runtools.verify`` answers
``require_scope`` with it. What must not live here: the catalog or any role.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ALL", "SERVICE_SCOPES", "covers", "resource_of"]

ALL = "*"

#: Scopes held only when named: no wildcard covers them.
SERVICE_SCOPES = frozenset({"auth:verify"})


def resource_of(scope: str) -> str:
    return scope.split(":", 1)[0]


def covers(granted: Iterable[str], required: str) -> bool:
    """Does a set of granted scopes include ``required``?

    ``*`` covers everything but the service scopes; ``res:*`` covers ``res:*``
    and every ``res:action``. A service scope is covered only by itself.
    """
    service = required in SERVICE_SCOPES
    for scope in granted:
        if scope == required or (scope == ALL and not service):
            return True
        if service:
            continue
        if scope.endswith(":*") and required != ALL and resource_of(scope) == resource_of(required):
            return True
    return False

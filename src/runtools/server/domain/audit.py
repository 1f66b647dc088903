"""What an audit event says: who did what to which object, from where, with what outcome.

Plain records only; how they are stored and batched is the store's
(``store.repositories.audit``), who may read them the service's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The action of any use of a honeytoken key (``isCanary``): high severity, always.
CANARY_USED = "api_key.canary_used"


@dataclass(frozen=True)
class RequestContext:
    """Where a call came from: what every audit event records about it."""

    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    # The node that received the call and forwarded it here (node-to-node, verified).
    via_node: str | None = None
    # A sandbox that node placed here, for this node to start (a forwarded create).
    placed: str | None = None


@dataclass
class AuditRecord:
    action: str
    outcome: str
    org_id: str | None
    actor_type: str
    actor_id: str | None
    context: RequestContext
    target_type: str | None = None
    target_id: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

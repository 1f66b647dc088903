"""Security events as structured log lines, one JSON object each — never a secret.

Authentication failures (with their true reason), authorization denials and
credential events (revocations, rotations, scope and membership changes)
go to the ``runtools.security`` logger and to the metrics. A line names ids,
the key's display prefix, the client address and the request id; nothing
a caller could authenticate with.
"""

from __future__ import annotations

import json
import logging

from runtools.server.domain.audit import CANARY_USED, AuditRecord
from runtools.server.domain.events import CredentialEvent
from runtools.server.observability.metrics import Metrics

security_log = logging.getLogger("runtools.security")

_WATCHED = {"auth.failed", "authz.denied", CANARY_USED}


class SecurityEvents:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_audit(self, record: AuditRecord) -> None:
        """Observer of queued audit records (the failure and denial paths)."""
        if record.action not in _WATCHED:
            return
        if record.action == "authz.denied":
            self._metrics.denials.inc()
        else:
            self._metrics.auth_failures.labels(record.reason or "unknown").inc()
        # A honeytoken's use is an alarm: logged above warnings, naming its source.
        level = logging.CRITICAL if record.action == CANARY_USED else logging.WARNING
        if security_log.isEnabledFor(level):
            security_log.log(
                level,
                json.dumps(
                    {
                        "event": record.action,
                        "severity": "high" if level == logging.CRITICAL else "warning",
                        "reason": record.reason,
                        "orgId": record.org_id,
                        "credentialId": record.actor_id,
                        "keyPrefix": record.details.get("keyPrefix"),
                        "route": record.details.get("route"),
                        "ip": record.context.ip,
                        "requestId": record.context.request_id,
                    }
                ),
            )

    def on_credential_event(self, event: CredentialEvent) -> None:
        """Subscriber of the event bus: every node logs what its cache forgot."""
        self._metrics.credential_events.labels(event.kind.value).inc()
        security_log.info(
            json.dumps(
                {
                    "event": "credential." + event.kind.value,
                    "orgId": event.org_id,
                    "keyId": event.key_id,
                    "userId": event.user_id,
                    "sessionId": event.session_id,
                }
            )
        )

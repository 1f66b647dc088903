"""The API's resources, each a sync/async pair hanging off the client (``rt.api_keys``)."""

from runtools.resources.api_keys import ApiKeys, AsyncApiKeys
from runtools.resources.audit_logs import AsyncAuditLogs, AuditLogs
from runtools.resources.auth import AsyncAuth, Auth
from runtools.resources.sessions import AsyncSessions, Sessions

__all__ = [
    "ApiKeys",
    "AsyncApiKeys",
    "AsyncAuditLogs",
    "AsyncAuth",
    "AsyncSessions",
    "AuditLogs",
    "Auth",
    "Sessions",
]

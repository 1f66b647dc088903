"""The API's resources, each a sync/async pair hanging off the client (``rt.api_keys``)."""

from runtools.resources.api_keys import ApiKeys, AsyncApiKeys
from runtools.resources.audit_logs import AsyncAuditLogs, AuditLogs

__all__ = ["ApiKeys", "AsyncApiKeys", "AsyncAuditLogs", "AuditLogs"]

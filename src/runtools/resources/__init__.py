"""The API's resources, each a sync/async pair hanging off the client (``rt.api_keys``)."""

from runtools.resources.api_keys import ApiKeys, AsyncApiKeys
from runtools.resources.audit_logs import AsyncAuditLogs, AuditLogs
from runtools.resources.auth import AsyncAuth, Auth
from runtools.resources.invitations import AsyncInvitations, Invitations
from runtools.resources.organizations import AsyncOrganizations, Organizations
from runtools.resources.projects import AsyncProjects, Projects
from runtools.resources.sessions import AsyncSessions, Sessions
from runtools.resources.ssh_keys import AsyncSshKeys, SshKeys
from runtools.resources.templates import AsyncTemplates, Templates

__all__ = [
    "ApiKeys",
    "AsyncApiKeys",
    "AsyncAuditLogs",
    "AsyncAuth",
    "AsyncInvitations",
    "AsyncOrganizations",
    "AsyncProjects",
    "AsyncSessions",
    "AsyncSshKeys",
    "AsyncTemplates",
    "AuditLogs",
    "Auth",
    "Invitations",
    "Organizations",
    "Projects",
    "Sessions",
    "SshKeys",
    "Templates",
]

"""Why a credential was not accepted by ``runtools.verify``.

VerifyError
├── CredentialRefused   401 (bad credential), 403 (a scope it lacks), 400 (two sent)
└── HubUnavailable      503: the hub could not be asked; never "allowed"
"""

from __future__ import annotations

UNAUTHORIZED_MESSAGE = "Invalid or missing authentication"


class VerifyError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CredentialRefused(VerifyError):
    """The credential is not good (401, one message for every reason), lacks a scope
    (403), or two different ones were sent (400)."""

    def __init__(self, status_code: int = 401, message: str = UNAUTHORIZED_MESSAGE) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = {400: "invalid_request", 401: "unauthorized"}.get(status_code, "forbidden")

    @classmethod
    def lacking(cls, scope: str) -> CredentialRefused:
        return cls(403, f"This call requires scope {scope}")


class HubUnavailable(VerifyError):
    """The hub did not answer, or refused this service's own key: fail closed."""

    status_code = 503
    code = "service_unavailable"

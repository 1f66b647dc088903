"""The server's exception tree: every error a client can be shown.

Each class carries the HTTP status and the wire ``code`` of the
``{"error": {"code", "message", "requestId"}}`` envelope. Lower layers
(database drivers, subprocesses, JSON) are translated into these at one
boundary with ``raise ... from exc``; nothing else reaches a client.

    ServiceError                      500 internal_error
    ├── InvalidRequest                400 invalid_request
    │   ├── ValidationFailed          400 validation_error
    │   └── SandboxPathRejected *     400 invalid_request
    ├── Unauthorized                  401 unauthorized
    │   └── SignInFailed              401 unauthorized (wrong email or password)
    ├── OAuthError                    400 (RFC 6749 error codes, OAuth body)
    ├── Forbidden                     403 forbidden
    │   └── QuotaExceeded             403 quota_exceeded
    ├── NotFound                      404 not_found
    │   └── SandboxNotFound *         404 not_found
    ├── MethodNotAllowed              405 method_not_allowed
    ├── Conflict                      409 conflict
    │   ├── SandboxStateConflict *    409 conflict
    │   └── SandboxProcessLimit *     409 process_limit_reached
    ├── IdempotencyKeyReused          422 idempotency_key_reused
    ├── PayloadTooLarge               413 payload_too_large
    │   └── SandboxFileTooLarge *     413 payload_too_large
    ├── RateLimited                   429 rate_limited
    │   └── Throttled                 429 rate_limited (failed guesses; no X-RateLimit-*)
    ├── CredentialRefused             401 or 403: a checked credential's own refusal
    ├── ServiceUnavailable            503 service_unavailable
    │   └── SandboxUnavailable *      503 sandbox_unavailable
    └── SandboxError                  500 sandbox_error

``*``: also a ``SandboxError``, which marks what the isolation driver (or the
sandbox service about a sandbox) reports. Each is first the kind it is, so
it renders as that kind and is caught by ``except NotFound`` and the like;
``except SandboxError`` catches every one of them. A bare ``SandboxError``
is a failure of the driver itself (500).

Beside the tree, and never shown to a client: ``HeldElsewhere``, raised when
a sandbox's processes run on another live node. The API forwards the
request there, and the caller sees that node's answer.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "CredentialRefused",
    "Forbidden",
    "HeldElsewhere",
    "IdempotencyKeyReused",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "OAuthError",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RateLimited",
    "SandboxError",
    "SandboxFileTooLarge",
    "SandboxNotFound",
    "SandboxPathRejected",
    "SandboxProcessLimit",
    "SandboxStateConflict",
    "SandboxUnavailable",
    "ServiceError",
    "ServiceUnavailable",
    "SignInFailed",
    "Throttled",
    "Unauthorized",
    "ValidationFailed",
]

UNAUTHORIZED_MESSAGE = "Invalid or missing authentication"


class ServiceError(Exception):
    """Base of every error the service reports to a client."""

    status_code: int = 500
    code: str = "internal_error"
    default_message: str = "Internal server error"
    #: Already in the audit log with its true reason: the API's error boundary, which
    #: audits every 403 and 404 an authenticated caller gets, does not add another.
    audited: bool = False

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """Extra response headers this error needs (e.g. ``Retry-After``)."""
        return {}


class InvalidRequest(ServiceError):
    status_code = 400
    code = "invalid_request"
    default_message = "Invalid request"


class ValidationFailed(InvalidRequest):
    code = "validation_error"
    default_message = "Request validation failed"


class Unauthorized(ServiceError):
    """Every authentication failure, whatever its true reason.

    The message is fixed on purpose: unknown, malformed, revoked and expired
    credentials must look the same to the caller. The reason goes to the
    audit log instead.
    """

    status_code = 401
    code = "unauthorized"
    default_message = UNAUTHORIZED_MESSAGE

    def __init__(self, message: str | None = None) -> None:
        super().__init__(UNAUTHORIZED_MESSAGE)

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="runtools"'}


class SignInFailed(Unauthorized):
    """Unknown email and wrong password: one reply for both."""

    def __init__(self) -> None:
        ServiceError.__init__(self, "Invalid email or password")


class OAuthError(ServiceError):
    """An OAuth 2.0 error (RFC 6749 §5.2, RFC 8628 §3.5), rendered as
    ``{"error", "error_description"}`` on the OAuth endpoints."""

    status_code = 400

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status_code: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.code = error
        self.status_code = status_code
        self._headers = headers or {}

    def headers(self) -> dict[str, str]:
        return dict(self._headers)


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"
    default_message = "Forbidden"


class QuotaExceeded(Forbidden):
    """A configured limit (e.g. live sandboxes per organization) is reached."""

    code = "quota_exceeded"
    default_message = "Quota exceeded"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"
    default_message = "Not found"


class MethodNotAllowed(ServiceError):
    status_code = 405
    code = "method_not_allowed"
    default_message = "Method not allowed"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"
    default_message = "Conflict"


class IdempotencyKeyReused(ServiceError):
    """An ``Idempotency-Key`` sent again with a different request: never replayed."""

    status_code = 422
    code = "idempotency_key_reused"
    default_message = (
        "This Idempotency-Key was already used with a different request; "
        "use a new key for a new request"
    )


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"
    default_message = "Request body too large"


class RateLimited(ServiceError):
    status_code = 429
    code = "rate_limited"
    default_message = "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Throttled(RateLimited):
    """Too many failed guesses (sign-ins, device codes): refused until ``Retry-After``.

    Not the per-minute request window, so the response carries none of that
    window's ``X-RateLimit-*`` headers: they would say requests remain while
    this refusal lasts far longer.
    """


class CredentialRefused(ServiceError):
    """A credential checked for another service was refused (``authn/verification.py``).

    Its status, code, message and headers are those of the refusal itself
    (``Unauthorized`` or ``Forbidden``); ``X-Runtools-Refused: credential``
    tells the asking service it was the credential it asked about, not its own.
    """

    audited = True  # by the check itself (verification.py, the authenticator)

    def __init__(self, refusal: Unauthorized | Forbidden) -> None:
        super().__init__(refusal.message)
        self.status_code = refusal.status_code
        self.code = refusal.code
        self.refusal = refusal

    def headers(self) -> dict[str, str]:
        return {**self.refusal.headers(), "X-Runtools-Refused": "credential"}


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "service_unavailable"
    default_message = "Service temporarily unavailable"


class SandboxError(ServiceError):
    """What the isolation driver reports; bare, a failure of the driver itself."""

    code = "sandbox_error"
    default_message = "Sandbox operation failed"


# The kind comes first in each base list: its status and code win over
# SandboxError's 500.


class SandboxUnavailable(ServiceUnavailable, SandboxError):
    """Isolation cannot be set up on this host; the message names what is missing."""

    code = "sandbox_unavailable"
    default_message = "Sandbox isolation is not available on this host"


class SandboxNotFound(NotFound, SandboxError):
    """No such sandbox in the driver, or no such file in a sandbox."""

    default_message = "Sandbox not found"


class SandboxStateConflict(Conflict, SandboxError):
    """The driver cannot do this in the sandbox's state (not running, paused, exists)."""

    default_message = "Sandbox is not in a state that allows this"


class SandboxProcessLimit(Conflict, SandboxError):
    """The sandbox holds as many processes as it may: no command can start in it."""

    code = "process_limit_reached"
    default_message = "The sandbox is at its process limit"

    def __init__(self, message: str | None = None, *, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class SandboxPathRejected(InvalidRequest, SandboxError):
    """A path outside the sandbox's allowed directories, or not the kind of file asked for."""

    default_message = "Path is outside the sandbox"


class SandboxFileTooLarge(PayloadTooLarge, SandboxError):
    """A file over the size limit, or no room left in the sandbox for it."""

    default_message = "File too large"


class HeldElsewhere(Exception):
    """The sandbox runs on another live node: send the request to ``url``.

    ``placed`` names a sandbox this node recorded on that node, which the
    node is to start (a create placed there); None for any other request.
    ``sandbox`` is the id of the sandbox held there, when the call names one.
    """

    def __init__(
        self, node: str, url: str, placed: str | None = None, *, sandbox: str | None = None
    ) -> None:
        super().__init__(f"held by node {node} at {url}")
        self.node = node
        self.url = url
        self.placed = placed
        self.sandbox = sandbox

"""Every error the SDK raises, in one tree.

    RunToolsError
    ├── MissingCredentialsError      no API key, access token or stored login
    ├── LoginStoreError              the stored-login file cannot be read or written
    ├── DeviceLoginError             a device sign-in ended without tokens (``error``)
    ├── APIConnectionError           the request did not get an HTTP answer
    │   └── APITimeoutError
    ├── APIResponseValidationError   a 2xx answer that is not the wire contract
    ├── ExecStreamError              a streamed command's ``error`` event
    └── APIStatusError               any non-2xx answer
        ├── BadRequestError          400
        ├── AuthenticationError      401
        ├── PermissionDeniedError    403
        ├── NotFoundError            404
        ├── ConflictError            409
        ├── RateLimitError           429 (carries ``retry_after``)
        └── InternalServerError      >= 500

Lower-layer errors (httpx transport errors, JSON decoding, pydantic
validation) are translated into these at the client's request boundary with
``raise ... from exc``; none reach a caller untranslated. The status class is
chosen in one place, :func:`make_status_error`.
"""

from __future__ import annotations

import httpx

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DeviceLoginError",
    "ExecStreamError",
    "InternalServerError",
    "LoginStoreError",
    "MissingCredentialsError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RunToolsError",
    "make_status_error",
]


class RunToolsError(Exception):
    """Base of every error the SDK raises."""


class MissingCredentialsError(RunToolsError):
    """The client found nothing to authenticate with."""

    def __init__(self) -> None:
        super().__init__(
            "No RunTools credentials found. Authenticate in one of three ways: "
            "pass api_key= or set the RUNTOOLS_API_KEY environment variable; "
            "pass access_token=; or run `runtools login`."
        )


class LoginStoreError(RunToolsError):
    """The stored logins cannot be read or written (a broken file, a permission)."""


class DeviceLoginError(RunToolsError):
    """The device sign-in ended without tokens.

    ``error`` is the OAuth code: ``access_denied`` (the person said no),
    ``expired_token`` (nobody approved in time), ``invalid_grant`` (already used).
    """

    def __init__(self, error: str, description: str | None) -> None:
        messages = {
            "access_denied": "The sign-in was denied",
            "expired_token": "The code expired before anyone approved it; sign in again",
            "invalid_grant": "This sign-in was already completed or is unknown",
        }
        message = description or messages.get(error) or f"Device sign-in failed ({error})"
        super().__init__(message)
        self.error = error
        self.message = message


#: Headers that carry a credential: blanked in any request an exception keeps.
_CREDENTIAL_HEADERS = ("x-api-key", "authorization")


def _without_credentials(request: httpx.Request) -> httpx.Request:
    """The request, its credential headers blanked: an exception is logged, printed, kept.

    (httpx hides ``Authorization`` in a repr, but not ``X-API-Key``, and not
    from anyone who reads the headers.) An exception ends its request; no
    retry sends it again.
    """
    for name in _CREDENTIAL_HEADERS:
        if name in request.headers:
            request.headers[name] = "[redacted]"
    return request


def _request_of(response: httpx.Response) -> httpx.Request | None:
    """The request that got ``response``, credentials blanked; None for one built without."""
    try:
        request = response.request
    except RuntimeError:
        return None
    return _without_credentials(request)


class APIConnectionError(RunToolsError):
    """The request was sent (or attempted) but no HTTP response came back."""

    def __init__(self, request: httpx.Request, message: str | None = None) -> None:
        message = message or "Connection error"
        super().__init__(message)
        self.message = message
        self.request = _without_credentials(request)


class APITimeoutError(APIConnectionError):
    def __init__(self, request: httpx.Request) -> None:
        super().__init__(request, "Request timed out")


class APIResponseValidationError(RunToolsError):
    """A successful status whose body does not match the wire contract.

    Seen when the URL points at something that is not a RunTools server, or
    when a server breaks the contract; a newer server's *extra* fields never
    cause it.
    """

    def __init__(self, response: httpx.Response, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.request = _request_of(response)
        self.response = response
        self.status_code = response.status_code
        self.request_id: str | None = response.headers.get("x-request-id")


class ExecStreamError(RunToolsError):
    """The server reported an error in the middle of a streamed command.

    The stream had already started (status 200), so the error comes as an
    event carrying the usual ``code``, ``message`` and ``request_id``.
    """

    def __init__(self, *, code: str | None, message: str, request_id: str | None) -> None:
        super().__init__(message if not request_id else f"{message} (request id {request_id})")
        self.code = code
        self.message = message
        self.request_id = request_id


class APIStatusError(RunToolsError):
    """The server answered with a non-2xx status.

    ``code`` and ``message`` come from the ``{"error": {...}}`` envelope;
    ``code`` is None when the body was not that envelope (a proxy's HTML
    page, say). ``request_id`` is what to quote to the server's operator.
    ``request`` (also ``response.request``) is the request that got the
    answer, its credential headers replaced by ``[redacted]``.
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        code: str | None,
        request_id: str | None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request = _request_of(response)
        self.response = response
        self.status_code = response.status_code
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [f"{self.status_code}"]
        if self.code:
            parts.append(self.code)
        text = f"{' '.join(parts)}: {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    """429. ``retry_after`` is the server's requested wait in seconds, if it sent one."""

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        code: str | None,
        request_id: str | None,
        retry_after: float | None,
    ) -> None:
        super().__init__(message, response=response, code=code, request_id=request_id)
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    pass


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
}


def make_status_error(
    response: httpx.Response,
    *,
    code: str | None,
    message: str,
    request_id: str | None,
    retry_after: float | None,
) -> APIStatusError:
    """Pick the exception class for a non-2xx response: the one place that maps statuses."""
    status = response.status_code
    if status == 429:
        return RateLimitError(
            message,
            response=response,
            code=code,
            request_id=request_id,
            retry_after=retry_after,
        )
    if status >= 500:
        error_class: type[APIStatusError] = InternalServerError
    else:
        error_class = _STATUS_ERRORS.get(status, APIStatusError)
    return error_class(message, response=response, code=code, request_id=request_id)

"""``runtools.verify``: a Python service checks RunTools credentials.

For the platform's other services (a tool host, an agent runner), with the
SDK's light dependencies plus PyJWT (``pip install 'runtools-platform[verify]'``):

- ``Verifier``: session access tokens verified offline against the hub's
  JWKS (an unknown ``kid`` refetches it, at most once per
  ``jwks_refetch_seconds``); API keys (and any token not signed by the hub)
  checked by the hub (``POST /v1/auth/verify``) with a bounded local cache
  (``cache_ttl_seconds``, ``cache_size``);
- ``VerifyMiddleware``: an ASGI middleware that refuses unauthenticated
  requests (401, or 403 for ``required_scopes``) and leaves the
  ``VerifiedPrincipal`` in ``scope["state"]["runtools_principal"]``;
- ``require_scope("tool:*")``: a FastAPI/Starlette dependency returning the
  principal, or refusing with 401/403.

Revocation bound: an API key revoked at the hub stops here within
``cache_ttl_seconds`` (the hub sends no revocation feed to services yet); a
session signed out (or a member demoted) within its access token's lifetime
(``RUNTOOLS_ACCESS_TOKEN_TTL_SECONDS`` at the hub, 5 minutes by default).
See docs/verify.md. Nothing here imports the server or the CLI.
"""

from runtools.verify._dependency import current_principal, require_scope
from runtools.verify._errors import CredentialRefused, HubUnavailable, VerifyError
from runtools.verify._middleware import PRINCIPAL_STATE_KEY, VerifyMiddleware
from runtools.verify._principal import VerifiedPrincipal
from runtools.verify._verifier import Verifier, presented_credential

__all__ = [
    "PRINCIPAL_STATE_KEY",
    "CredentialRefused",
    "HubUnavailable",
    "VerifiedPrincipal",
    "Verifier",
    "VerifyError",
    "VerifyMiddleware",
    "current_principal",
    "presented_credential",
    "require_scope",
]

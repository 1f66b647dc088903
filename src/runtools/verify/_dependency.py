"""``require_scope``: a FastAPI / Starlette dependency that returns the caller's principal.

    from fastapi import Depends, FastAPI
    from runtools.verify import VerifiedPrincipal, Verifier, require_scope

    app = FastAPI()
    app.state.runtools_verifier = Verifier()

    @app.get("/tools/run")
    async def run(caller: VerifiedPrincipal = Depends(require_scope("tool:*"))): ...

It takes the principal ``VerifyMiddleware`` left in the request's state, or
else verifies the request's credential itself (with ``verifier`` or
``app.state.runtools_verifier``). A refusal is Starlette's ``HTTPException``
(400, 401 with ``WWW-Authenticate``, 403 naming the scope, 503). Starlette is
imported only when a dependency is made.
"""

from typing import Any

from runtools.verify._errors import CredentialRefused, VerifyError
from runtools.verify._middleware import PRINCIPAL_STATE_KEY
from runtools.verify._principal import VerifiedPrincipal
from runtools.verify._verifier import Verifier, presented_credential

# No ``from __future__ import annotations`` here: FastAPI reads the dependency's
# parameter annotation (Starlette's ``Request``, imported when one is made) as a class.


def require_scope(*scopes: str, verifier: Verifier | None = None) -> Any:
    """A dependency returning the ``VerifiedPrincipal`` if it may use every scope given."""
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    async def dependency(request: Request) -> VerifiedPrincipal:
        try:
            principal = request.scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
            if principal is None:
                checker = verifier or getattr(request.app.state, "runtools_verifier", None)
                if checker is None:
                    raise RuntimeError(
                        "require_scope needs a Verifier: pass verifier= or set "
                        "app.state.runtools_verifier (or add VerifyMiddleware)"
                    )
                principal = await checker.verify(presented_credential(request.scope["headers"]))
            assert isinstance(principal, VerifiedPrincipal)
            lacking = [scope for scope in scopes if not principal.allows(scope)]
            if lacking:
                raise CredentialRefused.lacking(lacking[0])
        except VerifyError as exc:
            headers = (
                {"WWW-Authenticate": 'Bearer realm="runtools"'} if exc.status_code == 401 else None
            )
            raise HTTPException(exc.status_code, detail=exc.message, headers=headers) from None
        return principal

    return dependency


def current_principal(verifier: Verifier | None = None) -> Any:
    """``require_scope()`` with no scope: any verified caller."""
    return require_scope(verifier=verifier)

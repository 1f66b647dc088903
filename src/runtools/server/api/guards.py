"""What each route requires, declared in its signature.

Every route takes exactly one guard: ``PUBLIC`` (or ``PUBLIC_RATE_LIMITED``,
counted per client address) or an ``Authenticated`` built with
``requires(scope=..., role=...)``. A test walks the route table and fails on
any route without one. Authenticated requests count against the
credential's rate limit before authorization. Missing scope or role is a
403 that names what is missing; the denial is audited.

    @router.get("/v1/things")
    async def list_things(principal: Annotated[Principal, requires(scope="thing:read")]): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import Depends
from starlette.requests import Request

from runtools.server.api.context import request_context, runtime_of
from runtools.server.domain.audit import AuditRecord
from runtools.server.domain.errors import Forbidden, InvalidRequest
from runtools.server.domain.principal import Principal
from runtools.server.ratelimit.meters import STATE_KEY as RATE_LIMIT_HEADERS

CREDENTIAL_HEADERS = (b"x-api-key", b"authorization")


@dataclass(frozen=True)
class Requirement:
    scope: str | None = None
    role: str | None = None
    credential: str | None = None
    public: bool = False
    limited_per_address: bool = False
    metrics_token: bool = False

    def describe(self) -> str:
        if self.metrics_token:
            return "metrics enabled, and the metrics token if one is set"
        if self.public:
            return "public, rate limited per address" if self.limited_per_address else "public"
        parts = [f"scope {self.scope}"] if self.scope else ["any valid credential"]
        if self.role:
            parts.append(f"role {self.role}")
        if self.credential:
            parts.append(f"a {self.credential} credential")
        return " and ".join(parts)


class Guard:
    """A FastAPI dependency that enforces one ``Requirement``."""

    def __init__(self, requirement: Requirement) -> None:
        self.requirement = requirement
        # Anything to check beyond a valid credential (scope, role or kind)?
        self._checks = bool(requirement.scope or requirement.role or requirement.credential)

    async def __call__(self, request: Request) -> Principal | None:
        if self.requirement.public:
            if self.requirement.limited_per_address:
                runtime = runtime_of(request)
                await runtime.rate_limiter.admit_address(
                    request_context(request).ip, request.scope["state"]
                )
            return None
        runtime = runtime_of(request)
        scope = request.scope
        state = scope["state"]
        # The steady state in one call: a cached, valid credential, counted (steady.py).
        principal: Principal | None = runtime.steady_path(scope["headers"], state)
        if principal is None:
            _refuse_repeated_credentials(scope["headers"])
            principal = await runtime.authenticator.authenticate(
                request.headers, partial(request_context, request)
            )
            state["principal"] = principal
            await runtime.rate_limiter.admit_principal(principal, state)
        elif RATE_LIMIT_HEADERS not in state:  # not counted there: a shared block used up
            await runtime.rate_limiter.admit_principal(principal, state)
        missing = self._missing(principal) if self._checks else None
        if missing is not None:
            runtime.audit.enqueue(
                AuditRecord(
                    action="authz.denied",
                    outcome="failure",
                    reason=f"requires {missing}",
                    org_id=principal.org_id,
                    actor_type=principal.credential_type,
                    actor_id=principal.credential_id,
                    context=request_context(request),
                    details={"route": getattr(request.scope.get("route"), "path", None)},
                )
            )
            raise Forbidden(f"This call requires {missing}")
        return principal

    def _missing(self, principal: Principal) -> str | None:
        if self.requirement.credential and principal.credential_type != self.requirement.credential:
            return f"a signed-in {self.requirement.credential} (not an API key)"
        if self.requirement.role and principal.role != self.requirement.role:
            return f"role {self.requirement.role}"
        if self.requirement.scope and not principal.allows(self.requirement.scope):
            return f"scope {self.requirement.scope}"
        return None


def _refuse_repeated_credentials(raw_headers: list[tuple[bytes, bytes]]) -> None:
    """Two ``X-API-Key`` (or ``Authorization``) headers are ambiguous: a 400, never a pick."""
    names = [name for name, _ in raw_headers if name in CREDENTIAL_HEADERS]
    if len(names) != len(set(names)):
        raise InvalidRequest(
            "Send one credential per request: one X-API-Key or one Authorization header"
        )


def requires(
    *, scope: str | None = None, role: str | None = None, credential: str | None = None
) -> Any:
    """A guard demanding a valid credential and, optionally, a scope, a role and a kind."""
    return Depends(Guard(Requirement(scope=scope, role=role, credential=credential)))


#: The guard of routes anyone may call.
PUBLIC: Any = Depends(Guard(Requirement(public=True)))

#: The guard of public routes a caller could abuse (sign-in, sign-up): limited per address.
PUBLIC_RATE_LIMITED: Any = Depends(Guard(Requirement(public=True, limited_per_address=True)))

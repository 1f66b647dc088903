"""What each route requires, declared in its signature.

Every route takes exactly one guard: ``PUBLIC`` (or ``PUBLIC_RATE_LIMITED``,
counted per client address) or an ``Authenticated`` built with
``requires(scope=..., role=...)``. A route whose own ``X-API-Key`` and
``Authorization`` belong to someone else (the reverse-proxy check, where
they are the proxied caller's) takes its caller's key from another header:
``requires(scope=..., key_header="x-runtools-service-key")``; that key is
then judged exactly as if it had come as ``X-API-Key``. A test walks the route table and fails on
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
from starlette.datastructures import Headers
from starlette.requests import Request

from runtools.server.api.context import request_context, runtime_of
from runtools.server.domain.audit import AuditRecord
from runtools.server.domain.errors import Forbidden, InvalidRequest
from runtools.server.domain.node_mark import STATE_KEY as NODE_MARK
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
    # The header carrying the caller's API key, when not X-API-Key / Authorization.
    key_header: str | None = None

    def unmet_by(self, principal: Principal) -> str | None:
        """What ``principal`` lacks of this requirement ("role admin"), or None if nothing.

        The dashboard's pages, which authenticate by cookie, ask the same question.
        """
        if self.credential and principal.credential_type != self.credential:
            return f"a signed-in {self.credential} (not an API key)"
        if self.role and principal.role != self.role:
            return f"role {self.role}"
        if self.scope and not principal.allows(self.scope):
            return f"scope {self.scope}"
        return None

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
        described = " and ".join(parts)
        return f"{described}, its key in {self.key_header}" if self.key_header else described


class Guard:
    """A FastAPI dependency that enforces one ``Requirement``."""

    def __init__(self, requirement: Requirement) -> None:
        self.requirement = requirement
        # Anything to check beyond a valid credential (scope, role or kind)?
        self._checks = bool(requirement.scope or requirement.role or requirement.credential)
        self._key_header = requirement.key_header.encode() if requirement.key_header else None

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
        raw = scope["headers"] if self._key_header is None else self._as_api_key(scope["headers"])
        if NODE_MARK in state:
            # Forwarded by the node that received it, which counted it: checked again
            # here in full, and not counted twice.
            refuse_repeated_credentials(raw)
            forwarded = await runtime.authenticator.authenticate(
                request.headers if self._key_header is None else Headers(raw=raw),
                partial(request_context, request),
            )
            state["principal"] = forwarded
            return self._authorized(request, forwarded)
        # The steady state in one call: a cached, valid credential, counted (steady.py).
        principal: Principal | None = runtime.steady_path(raw, state)
        if principal is None:
            refuse_repeated_credentials(raw)
            principal = await runtime.authenticator.authenticate(
                request.headers if self._key_header is None else Headers(raw=raw),
                partial(request_context, request),
            )
            state["principal"] = principal
            await runtime.rate_limiter.admit_principal(principal, state)
        elif RATE_LIMIT_HEADERS not in state:  # not counted there: a shared block used up
            await runtime.rate_limiter.admit_principal(principal, state)
        return self._authorized(request, principal)

    def _authorized(self, request: Request, principal: Principal) -> Principal:
        """``principal`` if it meets the requirement, else an audited 403."""
        runtime = runtime_of(request)
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
            denied = Forbidden(f"This call requires {missing}")
            denied.audited = True
            raise denied
        return principal

    def _as_api_key(self, raw_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The key in ``key_header`` as an ``X-API-Key`` header, and nothing else."""
        return [(b"x-api-key", value) for name, value in raw_headers if name == self._key_header]

    def _missing(self, principal: Principal) -> str | None:
        return self.requirement.unmet_by(principal)


def refuse_repeated_credentials(raw_headers: list[tuple[bytes, bytes]]) -> None:
    """Two ``X-API-Key`` (or ``Authorization``) headers are ambiguous: a 400, never a pick."""
    names = [name for name, _ in raw_headers if name in CREDENTIAL_HEADERS]
    if len(names) != len(set(names)):
        raise InvalidRequest(
            "Send one credential per request: one X-API-Key or one Authorization header"
        )


def requires(
    *,
    scope: str | None = None,
    role: str | None = None,
    credential: str | None = None,
    key_header: str | None = None,
) -> Any:
    """A guard demanding a valid credential and, optionally, a scope, a role and a kind.

    ``key_header`` (lower case): the caller's API key travels in this header instead.
    """
    requirement = Requirement(scope=scope, role=role, credential=credential, key_header=key_header)
    return Depends(Guard(requirement))


#: The guard of routes anyone may call.
PUBLIC: Any = Depends(Guard(Requirement(public=True)))

#: The guard of public routes a caller could abuse (sign-in, sign-up): limited per address.
PUBLIC_RATE_LIMITED: Any = Depends(Guard(Requirement(public=True, limited_per_address=True)))

"""Per-request facts: the runtime serving it, its request id and caller address."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from runtools.server.domain.audit import RequestContext
from runtools.server.domain.node_mark import STATE_KEY as NODE_MARK

if TYPE_CHECKING:
    from runtools.server.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The ``Runtime`` of the app serving ``request`` (``RunToolsApp.runtime``)."""
    runtime: Runtime = request.scope["app"].runtime
    return runtime


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "req_unknown"))


def client_ip(request: Request, *, trust_forwarded_for: bool) -> str | None:
    if trust_forwarded_for:
        # The last entry is the one our proxy appended: the address it saw. Anything
        # before it is whatever the client sent, so it can be blank or made up.
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        last = forwarded.rsplit(",", 1)[-1].strip()[:64]
        if last:
            return last
    return request.client.host if request.client else None


def request_context(request: Request) -> RequestContext:
    settings = runtime_of(request).settings
    mark = request.scope.get("state", {}).get(NODE_MARK)
    if mark is not None:  # forwarded by another node, which saw the caller
        return RequestContext(
            request_id=request_id_of(request),
            ip=mark.ip,
            user_agent=request.headers.get("user-agent"),
            via_node=mark.node,
            placed=mark.placed,
        )
    return RequestContext(
        request_id=request_id_of(request),
        ip=client_ip(request, trust_forwarded_for=settings.trust_forwarded_for),
        user_agent=request.headers.get("user-agent"),
    )

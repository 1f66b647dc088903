"""``/v1/templates``: the root filesystems this node's sandboxes start from.

Any credential that may read sandboxes may list them; importing and
removing are operator commands (``runtools admin templates``), not routes.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from starlette.requests import Request

from runtools.server.api.context import request_id_of, runtime_of
from runtools.server.api.envelope import ListEnvelope, ListMeta
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.principal import Principal
from runtools.server.services.sandboxes.templates import TemplateOut, TemplateService

router = tagged_router("templates", "/v1/templates")


def _service(request: Request) -> TemplateService:
    service: TemplateService = runtime_of(request).templates
    return service


@router.get("", name="list")
async def list_templates(
    request: Request, principal: Annotated[Principal, requires(scope="sandbox:read")]
) -> ListEnvelope[TemplateOut]:
    """The templates a sandbox can be created from on this node, the default first."""
    listed = await anyio.to_thread.run_sync(lambda: _service(request).list_templates(principal))
    return ListEnvelope(
        data=listed,
        meta=ListMeta(request_id=request_id_of(request), has_more=False, next_cursor=None),
    )

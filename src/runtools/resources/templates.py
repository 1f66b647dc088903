"""``rt.templates``: the root filesystems a sandbox can start from.

``rt.templates.list()`` names them, the default first; pass a template's
``name`` (or one of its ``aliases``) as ``rt.sandbox.create(template=...)``.
Operators import and remove templates with ``runtools admin templates``.
"""

from __future__ import annotations

from runtools._models import Template
from runtools._resource import AsyncResource, SyncResource

__all__ = ["AsyncTemplates", "Templates"]

_PATH = "/templates"


class Templates(SyncResource):
    def list(self) -> list[Template]:
        """The templates of the node that answers, the default first."""
        return self._client._request("GET", _PATH).page(Template).data


class AsyncTemplates(AsyncResource):
    async def list(self) -> list[Template]:
        """The templates of the node that answers, the default first."""
        return (await self._client._request("GET", _PATH)).page(Template).data

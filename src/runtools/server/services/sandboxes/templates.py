"""Templates as callers and operators see them: listing, importing, removing.

Callers list this node's templates (any member: a template holds no
secret). Operators import and remove them (``runtools admin templates``).
A template is in use while a sandbox on this node that is not destroyed or
failed names it (the default is named by its own name and by the
documented ``base-ubuntu``, unless a template of that name was imported):
such a template is neither removed nor replaced.

Not here: extracting a tarball, where templates live, resolving a name
(``runtools.server.sandbox.templates``), HTTP.
"""

from __future__ import annotations

from pathlib import Path

from runtools import _models as sdk
from runtools.server.domain.principal import Principal
from runtools.server.domain.wire import sent_shape
from runtools.server.sandbox.templates import DOCUMENTED_DEFAULT, Template, TemplateStore
from runtools.server.services.sandboxes.states import LIVE
from runtools.server.store.database import Database
from runtools.server.store.repositories import sandboxes as repo

__all__ = ["TemplateOut", "TemplateService"]


@sent_shape
class TemplateOut(sdk.Template):
    # A template as callers see it: the SDK's ``Template``, every field required.
    ...


def template_view(template: Template) -> TemplateOut:
    return TemplateOut(
        name=template.name,
        kind=template.kind,
        description=template.description,
        is_default=template.is_default,
        aliases=list(template.aliases),
        size=template.size,
        files=template.files,
        imported_at=template.imported_at,
    )


class TemplateService:
    def __init__(self, database: Database, store: TemplateStore, *, node: str) -> None:
        self._database = database
        self._store = store
        self._node = node

    @property
    def store(self) -> TemplateStore:
        return self._store

    def list_templates(self, caller: Principal | None = None) -> list[TemplateOut]:
        """Every template of this node, the default first."""
        del caller  # every member may see them
        return [template_view(t) for t in self._store.list()]

    def in_use(self, name: str) -> int:
        """Sandboxes on this node, neither destroyed nor failed, started from ``name``."""
        names = {name}
        if name == self._store.default_name or (
            name == DOCUMENTED_DEFAULT and not self._store.exists(name)
        ):
            names |= {self._store.default_name, DOCUMENTED_DEFAULT}
        with self._database.session() as session:
            return repo.count_of_template(session, self._node, names, LIVE)

    def import_template(self, name: str, source: Path, *, replace: bool = False) -> TemplateOut:
        self._store.sweep()
        template = self._store.import_tar(name, source, replace=replace, in_use=self.in_use)
        return template_view(template)

    def remove(self, name: str) -> None:
        self._store.remove(name, in_use=self.in_use)

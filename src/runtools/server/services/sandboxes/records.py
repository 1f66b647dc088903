"""What the sandbox service takes and gives: requests, views and their validation.

A ``SandboxView`` is a sandbox as its owner may see it (environment names,
never values); ``NewSandbox`` and ``ExecRequest`` are what a caller asks for,
checked by ``validated`` before anything is recorded; ``view_of`` reads a
stored row into a view.

Not here: who may see or do what (``service``), how rows are found or
changed (the repository), the wire's JSON shape (the routers' models).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from runtools.server.domain.clock import as_utc
from runtools.server.domain.errors import InvalidRequest
from runtools.server.domain.ids import random_base62

if TYPE_CHECKING:
    from runtools.server.store.models import Sandbox

__all__ = [
    "ExecRequest",
    "NewSandbox",
    "SandboxResources",
    "SandboxView",
    "new_sandbox_id",
    "validated",
    "view_of",
]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:=/-]{0,63}$")
ID_PREFIX = "sandbox-"
MAX_TAGS = 32


def new_sandbox_id() -> str:
    """``sandbox-`` and 12 random base62 characters (71 bits): not enumerable."""
    return f"{ID_PREFIX}{random_base62(12)}"


@dataclass(frozen=True)
class SandboxResources:
    vcpus: float = 1.0
    memory_mib: int = 512
    disk_mib: int = 1024


@dataclass(frozen=True)
class NewSandbox:
    name: str | None = None
    template: str = "base-ubuntu"
    tags: list[str] = field(default_factory=list)
    env: Mapping[str, str] = field(default_factory=dict)
    idle_timeout: int | None = None
    resources: SandboxResources = field(default_factory=SandboxResources)
    project_id: str | None = None
    # Ids of the organization's registered SSH keys let in besides the owner's and admins'.
    ssh_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExecRequest:
    command: str
    cwd: str = "/workspace"
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_ms: int = 30_000


@dataclass(frozen=True)
class SandboxView:
    """A sandbox as its owner may see it: environment names, never values."""

    id: str
    org_id: str
    name: str | None
    template: str
    status: str
    status_message: str | None
    tags: list[str]
    env_keys: list[str]
    project_id: str | None
    idle_timeout: int | None
    resources: SandboxResources
    owner_user_id: str
    node: str
    last_activity_at: datetime
    created_at: datetime
    updated_at: datetime
    destroyed_at: datetime | None
    ssh_keys: list[str] = field(default_factory=list)


def view_of(row: Sandbox) -> SandboxView:
    return SandboxView(
        id=row.id,
        org_id=row.org_id,
        name=row.name,
        template=row.template,
        status=row.status,
        status_message=row.status_message,
        tags=list(row.tags),
        env_keys=list(row.env_keys),
        project_id=row.project_id,
        idle_timeout=row.idle_timeout,
        resources=SandboxResources(row.vcpus, row.memory_mib, row.disk_mib),
        owner_user_id=row.owner_user_id,
        node=row.node,
        last_activity_at=as_utc(row.last_activity_at),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        destroyed_at=as_utc(row.destroyed_at) if row.destroyed_at else None,
        ssh_keys=list(row.ssh_key_ids or []),
    )


def validated(new: NewSandbox) -> NewSandbox:
    if new.name is not None and (not NAME.match(new.name) or new.name.startswith(ID_PREFIX)):
        raise InvalidRequest(
            "name must be 1-63 letters, digits, '.', '_' or '-', start with a letter or "
            f"digit, and not start with {ID_PREFIX!r}"
        )
    bad = [t for t in new.tags if not TAG.match(t)]
    if bad or len(new.tags) > MAX_TAGS:
        raise InvalidRequest(
            f"tags: at most {MAX_TAGS}, each 1-64 of letters, digits and . _ : = / -"
        )
    return NewSandbox(
        name=new.name,
        template=new.template,
        tags=sorted(set(new.tags)),
        env=dict(new.env),
        idle_timeout=new.idle_timeout,
        resources=new.resources,
        project_id=new.project_id,
        ssh_keys=sorted(set(new.ssh_keys)),
    )

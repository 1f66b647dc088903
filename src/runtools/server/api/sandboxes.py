"""``/v1/sandboxes``: create, list, get, pause, resume, destroy.

A sandbox is addressed by id (``sandbox-…``) or by its name wherever a
path says ``{sandbox}``. Commands and files live in ``sandbox_exec`` and
``sandbox_files``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Body, Path, Query
from pydantic import Field, field_validator
from starlette.requests import Request

from runtools import _models as sdk
from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import (
    Envelope,
    ListEnvelope,
    ListMeta,
    RequestModel,
    WireModel,
    meta_of,
)
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.audit import RequestContext
from runtools.server.domain.paging import DEFAULT_LIMIT, MAX_LIMIT
from runtools.server.domain.principal import Principal
from runtools.server.domain.wire import sent_shape
from runtools.server.services.sandboxes.io import SandboxIO
from runtools.server.services.sandboxes.records import NewSandbox, SandboxResources, SandboxView
from runtools.server.services.sandboxes.service import SandboxService

router = tagged_router("sandboxes", "/v1/sandboxes")


class SandboxAction(Protocol):
    """A state change of ``SandboxService``: pause, resume or destroy."""

    def __call__(
        self, service: SandboxService, caller: Principal, ref: str, /, *, context: RequestContext
    ) -> Awaitable[SandboxView]: ...


SandboxRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=63,
        description="The sandbox's id (`sandbox-…`) or its name",
        examples=["my-env"],
    ),
]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
EnvValue = Annotated[str, Field(max_length=32_768)]
Env = Annotated[dict[EnvName, EnvValue], Field(max_length=128)]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
SshKeyId = Annotated[str, Field(min_length=1, max_length=64)]


def sandbox_service(request: Request) -> SandboxService:
    service: SandboxService = runtime_of(request).sandboxes
    return service


def sandbox_io(request: Request) -> SandboxIO:
    """Commands and files of running sandboxes (``sandbox_exec``, ``sandbox_files``)."""
    io: SandboxIO = runtime_of(request).sandbox_io
    return io


class ResourcesOut(WireModel):
    vcpus: float
    memory: int = Field(description="MiB")
    disk: int = Field(description="MiB")


class SandboxOut(WireModel):
    id: str
    name: str | None
    template: str
    status: str
    status_message: str | None = Field(description="Why the sandbox is failed or in error")
    tags: list[str]
    project_id: str | None
    mounts: list[str] = Field(default_factory=list, description="Always empty here")
    env_keys: list[str] = Field(description="Names of the sandbox's variables; never values")
    idle_timeout: int | None = Field(description="Seconds without activity before pausing")
    resources: ResourcesOut
    owner_user_id: str
    node: str
    last_activity_at: datetime
    created_at: datetime
    updated_at: datetime
    destroyed_at: datetime | None
    ssh_keys: list[str] = Field(
        description="Registered SSH keys let in besides the owner's and the admins'"
    )

    @classmethod
    def of(cls, view: SandboxView) -> SandboxOut:
        return cls(
            id=view.id,
            name=view.name,
            template=view.template,
            status=view.status,
            status_message=view.status_message,
            tags=view.tags,
            project_id=view.project_id,
            env_keys=view.env_keys,
            idle_timeout=view.idle_timeout,
            resources=ResourcesOut(
                vcpus=view.resources.vcpus,
                memory=view.resources.memory_mib,
                disk=view.resources.disk_mib,
            ),
            owner_user_id=view.owner_user_id,
            node=view.node,
            last_activity_at=view.last_activity_at,
            created_at=view.created_at,
            updated_at=view.updated_at,
            destroyed_at=view.destroyed_at,
            ssh_keys=view.ssh_keys,
        )


class ResourcesIn(RequestModel):
    vcpus: float = Field(default=1.0, ge=0.05, le=64)
    memory: int = Field(default=512, ge=32, le=262_144, description="MiB")
    disk: int = Field(default=1024, ge=16, le=1_048_576, description="MiB")


class CreateSandbox(RequestModel):
    name: str | None = Field(
        default=None, min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )
    template: str = Field(default="base-ubuntu", min_length=1, max_length=64)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    env: Env = Field(default_factory=dict)
    idle_timeout: int | None = Field(default=None, ge=1, le=30 * 86_400)
    resources: ResourcesIn = Field(default_factory=ResourcesIn)
    project_id: str | None = None
    ssh_keys: list[SshKeyId] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Ids of SSH keys registered with the organization (GET /v1/ssh-keys) let in "
            "over SSH besides the owner's and the admins' own keys"
        ),
    )

    @field_validator("project_id")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError as exc:
            raise ValueError("projectId must be a UUID or null") from exc


@router.post("", name="create", status_code=201)
async def create_sandbox(
    request: Request,
    body: Annotated[CreateSandbox, Body(default_factory=CreateSandbox)],
    principal: Annotated[Principal, requires(scope="sandbox:create")],
) -> Envelope[SandboxOut]:
    """Start a sandbox; it is ``running`` when this returns. 503 if isolation is unavailable."""
    view = await sandbox_service(request).create(
        principal,
        NewSandbox(
            name=body.name,
            template=body.template,
            tags=body.tags,
            env=body.env,
            idle_timeout=body.idle_timeout,
            resources=SandboxResources(
                vcpus=body.resources.vcpus,
                memory_mib=body.resources.memory,
                disk_mib=body.resources.disk,
            ),
            project_id=body.project_id,
            ssh_keys=body.ssh_keys,
        ),
        context=request_context(request),
    )
    return Envelope(data=SandboxOut.of(view), meta=meta_of(request))


@router.get("", name="list")
async def list_sandboxes(
    request: Request,
    principal: Annotated[Principal, requires(scope="sandbox:read")],
    status: Annotated[
        str | None, Query(max_length=200, description="Comma-separated statuses")
    ] = None,
    tags: Annotated[
        str | None, Query(max_length=1000, description="Comma-separated; all must match")
    ] = None,
    template: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    all: Annotated[bool, Query(description="Every sandbox of the org (admins only)")] = False,
    project_id: Annotated[
        str | None,
        Query(alias="projectId", max_length=64, description="Only the sandboxes of this project"),
    ] = None,
) -> ListEnvelope[SandboxOut]:
    """Your sandboxes, newest first; ``all=true`` lists the organization's (admins)."""
    page = await sandbox_service(request).list_sandboxes(
        principal,
        all_sandboxes=all,
        statuses=_split(status),
        tags=_split(tags),
        template=template,
        limit=limit,
        cursor=cursor,
        project_id=project_id,
    )
    return ListEnvelope(
        data=[SandboxOut.of(v) for v in page.items],
        meta=ListMeta(
            request_id=request_id_of(request),
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        ),
    )


@router.get("/{sandbox}", name="get")
async def get_sandbox(
    request: Request,
    sandbox: SandboxRef,
    principal: Annotated[Principal, requires(scope="sandbox:read")],
) -> Envelope[SandboxOut]:
    view = await sandbox_service(request).get(principal, sandbox)
    return Envelope(data=SandboxOut.of(view), meta=meta_of(request))


@sent_shape
class SshAccessOut(sdk.SshAccess):
    # How to reach a sandbox over SSH: the SDK's ``SshAccess``, every field required.
    ...


@router.get("/{sandbox}/ssh", name="ssh")
async def sandbox_ssh(
    request: Request,
    sandbox: SandboxRef,
    principal: Annotated[Principal, requires(scope="sandbox:read")],
) -> Envelope[SshAccessOut]:
    """How to reach the sandbox over SSH: host, port, user and an ``ssh`` command line.

    A registered SSH key (``/v1/ssh-keys``) of its owner or of an admin lets
    in, or one the sandbox was created with (``sshKeys``). 503 when this
    server does not serve SSH.
    """
    settings = runtime_of(request).settings
    host = settings.ssh_public_host or request.url.hostname or settings.host
    access = await runtime_of(request).sandbox_ssh.access(principal, sandbox, host)
    return Envelope(
        data=SshAccessOut(
            host=access.host, port=access.port, user=access.user, command=access.command
        ),
        meta=meta_of(request),
    )


SandboxWriter = Annotated[Principal, requires(scope="sandbox:write")]


@router.post("/{sandbox}/pause", name="pause")
async def pause_sandbox(
    request: Request, sandbox: SandboxRef, principal: SandboxWriter
) -> Envelope[SandboxOut]:
    """Freeze every process of the sandbox; commands are refused until it is resumed."""
    return await _change(request, sandbox, principal, SandboxService.pause)


@router.post("/{sandbox}/resume", name="resume")
async def resume_sandbox(
    request: Request, sandbox: SandboxRef, principal: SandboxWriter
) -> Envelope[SandboxOut]:
    """Thaw a paused sandbox; its processes carry on where they stopped."""
    return await _change(request, sandbox, principal, SandboxService.resume)


@router.delete("/{sandbox}", name="destroy")
async def destroy_sandbox(
    request: Request, sandbox: SandboxRef, principal: SandboxWriter
) -> Envelope[SandboxOut]:
    """Kill every process and remove every file; the record stays, ``destroyed``."""
    return await _change(request, sandbox, principal, SandboxService.destroy)


async def _change(
    request: Request, sandbox: str, principal: Principal, action: SandboxAction
) -> Envelope[SandboxOut]:
    view = await action(
        sandbox_service(request), principal, sandbox, context=request_context(request)
    )
    return Envelope(data=SandboxOut.of(view), meta=meta_of(request))


def _split(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]

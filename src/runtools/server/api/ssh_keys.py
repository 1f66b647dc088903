"""``/v1/ssh-keys``: register, list, read and remove SSH public keys.

Reading takes ``ssh-key:read``, adding and removing ``ssh-key:write``; the
service decides whose keys the caller may touch (their own; an admin's,
every key of the organization).
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import Query
from pydantic import Field
from starlette.requests import Request

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import Envelope, ListEnvelope, ListMeta, RequestModel, meta_of
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.paging import DEFAULT_LIMIT, MAX_LIMIT
from runtools.server.domain.principal import Principal
from runtools.server.domain.ssh_keys import MAX_PUBLIC_KEY
from runtools.server.services.ssh_keys import SshKeyOut, SshKeyService

router = tagged_router("ssh-keys", "/v1/ssh-keys")

SshKeyId = Annotated[str, Field(min_length=1, max_length=64)]
Reader = Annotated[Principal, requires(scope="ssh-key:read")]
Writer = Annotated[Principal, requires(scope="ssh-key:write")]


class AddSshKey(RequestModel):
    name: str = Field(min_length=1, max_length=100, examples=["my-laptop"])
    public_key: str = Field(
        min_length=1,
        max_length=MAX_PUBLIC_KEY,
        description="One line of a .pub file: TYPE BASE64 [COMMENT]",
        examples=[
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINERDM2ltDwZgpK+MnfTQnRG5Md27UnsO35ul+nP2tjo"
        ],
    )


def _service(request: Request) -> SshKeyService:
    service: SshKeyService = runtime_of(request).ssh_keys
    return service


@router.post("", name="create", status_code=201)
async def add_ssh_key(request: Request, body: AddSshKey, principal: Writer) -> Envelope[SshKeyOut]:
    """Register one of your SSH public keys with the organization.

    Accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa of at
    least 3072 bits. A private key is refused and never stored.
    """
    name = body.name.strip() or body.name
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).add(
            principal, name=name, public_key=body.public_key, context=request_context(request)
        )
    )
    return Envelope(data=view, meta=meta_of(request))


@router.get("", name="list")
async def list_ssh_keys(
    request: Request,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    all: Annotated[bool, Query(description="Every key of the org (admins only)")] = False,
) -> ListEnvelope[SshKeyOut]:
    """Your SSH keys, newest first; ``all=true`` lists the organization's (admins)."""
    page = await anyio.to_thread.run_sync(
        lambda: _service(request).list_keys(principal, all_keys=all, limit=limit, cursor=cursor)
    )
    return ListEnvelope(
        data=page.items,
        meta=ListMeta(
            request_id=request_id_of(request),
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        ),
    )


@router.get("/{ssh_key_id}", name="get")
async def get_ssh_key(
    request: Request, ssh_key_id: SshKeyId, principal: Reader
) -> Envelope[SshKeyOut]:
    view = await anyio.to_thread.run_sync(lambda: _service(request).get(principal, ssh_key_id))
    return Envelope(data=view, meta=meta_of(request))


@router.delete("/{ssh_key_id}", name="delete")
async def remove_ssh_key(
    request: Request, ssh_key_id: SshKeyId, principal: Writer
) -> Envelope[SshKeyOut]:
    """Remove an SSH key: it opens no new SSH session from now on."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).remove(principal, ssh_key_id, request_context(request))
    )
    return Envelope(data=view, meta=meta_of(request))

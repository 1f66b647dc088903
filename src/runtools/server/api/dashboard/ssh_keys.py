"""Credentials > SSH Keys: this person's public keys for the sandboxes' SSH, added and removed.

A key is pasted into the form or chosen as its file; what makes one valid is
``SshKeyService``'s. No other page lives here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import File, Form, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.dashboard.visit import FormField, Visit, page_router
from runtools.server.api.guards import PUBLIC
from runtools.server.domain.errors import ServiceError
from runtools.server.domain.ssh_keys import MAX_PUBLIC_KEY

router = page_router()

SSH = "/dashboard/ssh-keys"


async def _ssh_page(
    visit: Visit, status: int = 200, error: str | None = None, notice: str | None = None
) -> Response:
    page = await visit.call(
        visit.runtime.ssh_keys.list_keys, visit.principal, all_keys=False, limit=100, cursor=None
    )
    return visit.page(
        "ssh_keys.html",
        status,
        title="SSH keys",
        nav="ssh",
        keys=page.items,
        error=error,
        notice=notice,
    )


@router.get("/dashboard/ssh-keys", name="dashboard-ssh-keys")
async def ssh_keys_page(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    if not isinstance(visit := await Visit.start(request), Visit):
        return visit
    flash = await visit.take_flash()
    return await _ssh_page(visit, notice=(flash or {}).get("notice"))


@router.post("/dashboard/ssh-keys", name="dashboard-ssh-key-add")
async def add_ssh_key(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    name: FormField = "",
    public_key: Annotated[str, Form(max_length=MAX_PUBLIC_KEY)] = "",
    public_key_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Add a public key pasted into the form or chosen as a file (``~/.ssh/id_ed25519.pub``)."""
    if not isinstance(visit := await Visit.posted(request, csrf), Visit):
        return visit
    text = public_key.strip()
    if not text and public_key_file is not None and public_key_file.filename:
        raw = await public_key_file.read(MAX_PUBLIC_KEY + 1)
        if len(raw) > MAX_PUBLIC_KEY:
            return await _ssh_page(visit, 400, "That file is too large to be a public key.")
        text = raw.decode("utf-8", errors="replace").strip()
    name = name.strip()
    if not 1 <= len(name) <= 100:
        return await _ssh_page(visit, 400, "Give the key a name of 1-100 characters.")
    if not text:
        return await _ssh_page(visit, 400, "Paste a public key or choose its file.")
    try:
        added = await visit.call(
            visit.runtime.ssh_keys.add,
            visit.principal,
            name=name,
            public_key=text,
            context=visit.context,
        )
    except ServiceError as exc:
        return await _ssh_page(visit, exc.status_code, exc.message)
    return visit.notice(f"SSH key “{added.name}” ({added.fingerprint}) is added.", SSH)


@router.get("/dashboard/ssh-keys/{key_id}/remove", name="dashboard-ssh-key-remove-page")
async def remove_ssh_key_page(
    request: Request, key_id: str, _: Annotated[None, PUBLIC]
) -> Response:
    if not isinstance(visit := await Visit.start(request), Visit):
        return visit
    key = await visit.found(visit.runtime.ssh_keys.get, visit.principal, key_id[:64])
    if isinstance(key, Response):
        return key
    return visit.page("ssh_key_remove.html", title=f"Remove “{key.name}”?", nav="ssh", key=key)


@router.post("/dashboard/ssh-keys/{key_id}/remove", name="dashboard-ssh-key-remove")
async def remove_ssh_key(
    request: Request, key_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf), Visit):
        return visit
    key = await visit.found(
        visit.runtime.ssh_keys.remove, visit.principal, key_id[:64], visit.context
    )
    if isinstance(key, Response):
        return key
    return visit.notice(f"SSH key “{key.name}” is removed.", SSH)

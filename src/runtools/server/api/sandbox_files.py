"""``/v1/sandboxes/{sandbox}/files``: upload, download and list, confined to the sandbox.

Paths are inside the sandbox (``/workspace/…``, ``/tmp/…``, ``/home/user/…``;
relative ones are under ``/workspace``). ``..`` out of those directories and
symlinks pointing out of them are refused (400). Uploads are the raw request
body, up to ``RUNTOOLS_SANDBOX_MAX_FILE_BYTES`` (this route's own body limit,
larger than the JSON default), written into the sandbox as it arrives, never
held whole; one that fails part way (too large, a full disk, the client
gone) leaves no new file and any old one whole. Downloads are raw bytes.

``…/files/archive`` moves a directory at once as a tar stream: uploaded
(plain or compressed, up to ``RUNTOOLS_SANDBOX_MAX_ARCHIVE_BYTES``) it is
unpacked into the directory, all or nothing; downloaded, it is the
directory's content. Neither is held whole in the service.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Query
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from runtools.server.api.envelope import Envelope, WireModel, meta_of
from runtools.server.api.guards import requires
from runtools.server.api.middleware import BodyLimit
from runtools.server.api.route_table import tagged_router
from runtools.server.api.sandboxes import SandboxRef, sandbox_io
from runtools.server.domain.errors import HeldElsewhere
from runtools.server.domain.principal import Principal
from runtools.server.sandbox.driver import FileEntry
from runtools.server.settings import Settings

router = tagged_router("sandboxes", "/v1/sandboxes")

FileUser = Annotated[Principal, requires(scope="sandbox:exec")]
FilePath = Annotated[str, Query(min_length=1, max_length=4096, examples=["/workspace/main.py"])]
OCTET_STREAM = "application/octet-stream"
TAR = "application/x-tar"
DirectoryPath = Annotated[
    str, Query(min_length=1, max_length=4096, examples=["/workspace/project"])
]


def body_limits(settings: Settings) -> list[BodyLimit]:
    """Uploads may be as large as a sandbox file may be, not just a JSON body."""
    return [
        BodyLimit("PUT", re.compile(r"/v1/sandboxes/[^/]+/files"), settings.sandbox_max_file_bytes),
        BodyLimit(
            "PUT",
            re.compile(r"/v1/sandboxes/[^/]+/files/archive"),
            settings.sandbox_max_archive_bytes,
        ),
    ]


class WrittenFile(WireModel):
    path: str
    size: int


class WrittenArchive(WireModel):
    path: str
    files: int
    size: int


class FileEntryOut(WireModel):
    name: str
    path: str
    type: str
    size: int
    modified_at: datetime

    @classmethod
    def of(cls, entry: FileEntry) -> FileEntryOut:
        return cls(
            name=entry.name,
            path=entry.path,
            type=entry.type,
            size=entry.size,
            modified_at=entry.modifiedAt,
        )


@router.put(
    "/{sandbox}/files",
    name="write-file",
    openapi_extra={
        "requestBody": {
            # No body writes an empty file, as `touch` would.
            "required": False,
            "description": "The file's bytes (none: an empty file)",
            "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def write_file(
    request: Request, sandbox: SandboxRef, path: FilePath, principal: FileUser
) -> Envelope[WrittenFile]:
    """Create or replace a file (parent directories are created) with the request body."""
    received = [0]

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if chunk:
                received[0] += len(chunk)
                yield chunk

    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else None
    chunks = body()
    try:
        written = await sandbox_io(request).write_file(principal, sandbox, path, chunks, size=size)
    except HeldElsewhere:
        raise  # forwarded, body and all, to the node that holds the sandbox
    except Exception:
        # Refused (a full disk, say): the rest of the body is read and dropped,
        # so the client, still sending, gets the answer and not a reset.
        with contextlib.suppress(Exception):
            async for _ in chunks:
                pass
        raise
    return Envelope(data=WrittenFile(path=written, size=received[0]), meta=meta_of(request))


@router.get(
    "/{sandbox}/files",
    name="read-file",
    response_class=Response,
    responses={200: {"content": {OCTET_STREAM: {"schema": {"type": "string"}}}}},
)
async def read_file(
    request: Request, sandbox: SandboxRef, path: FilePath, principal: FileUser
) -> Response:
    """A regular file's bytes."""
    data = await sandbox_io(request).read_file(principal, sandbox, path)
    return Response(content=data, media_type=OCTET_STREAM)


@router.get("/{sandbox}/files/list", name="list-files")
async def list_files(
    request: Request,
    sandbox: SandboxRef,
    principal: FileUser,
    path: Annotated[str, Query(min_length=1, max_length=4096)] = "/workspace",
) -> Envelope[list[FileEntryOut]]:
    """A directory's entries, sorted by name; symlinks are listed, not followed."""
    entries = await sandbox_io(request).list_files(principal, sandbox, path)
    return Envelope(data=[FileEntryOut.of(e) for e in entries], meta=meta_of(request))


@router.put(
    "/{sandbox}/files/archive",
    name="write-archive",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                TAR: {"schema": {"type": "string", "format": "binary"}},
                "application/gzip": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def write_archive(
    request: Request, sandbox: SandboxRef, path: DirectoryPath, principal: FileUser
) -> Envelope[WrittenArchive]:
    """Unpack a tar (or tar.gz, .bz2, .xz) into a directory, created if missing.

    Entries merge into an existing directory and replace its files. All or
    nothing: an absolute name, ``..``, a link pointing out or a device file
    refuses the whole archive (400) and no file of it is written.
    """
    written = await sandbox_io(request).write_archive(principal, sandbox, path, request.stream())
    return Envelope(
        data=WrittenArchive(path=written.path, files=written.files, size=written.size),
        meta=meta_of(request),
    )


@router.get(
    "/{sandbox}/files/archive",
    name="read-archive",
    response_class=StreamingResponse,
    responses={200: {"content": {TAR: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def read_archive(
    request: Request,
    sandbox: SandboxRef,
    principal: FileUser,
    path: DirectoryPath = "/workspace",
) -> StreamingResponse:
    """A directory as a tar stream, names relative to it; links are stored, not followed."""
    stream = await sandbox_io(request).read_archive(principal, sandbox, path)
    name = path.rstrip("/").rsplit("/", 1)[-1] or "workspace"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return StreamingResponse(
        stream,
        media_type=TAR,
        headers={"content-disposition": f'attachment; filename="{safe}.tar"'},
    )

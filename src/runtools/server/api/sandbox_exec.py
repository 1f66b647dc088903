"""``POST /v1/sandboxes/{sandbox}/exec``: run a command, whole or streamed; ``…/kill``.

The plain form answers once the command ends, with its output (capped per
stream) and exit code. The streaming form - ``POST …/exec/stream``, or
``POST …/exec`` with ``Accept: text/event-stream`` - answers at once with
Server-Sent Events::

    event: stdout            data: {"data": "chunk of text"}
    event: stderr            data: {"data": "…"}
    event: exit              data: {"exitCode": 0, "durationMs": 12, "timedOut": false,
                                    "stdoutTruncated": false, "stderrTruncated": false}
    event: error             data: {"error": {"code", "message", "requestId"}}

Refusals (scope, state, validation, a sandbox at its process limit) come
before the stream as ordinary error responses. Closing the connection kills
the command. ``POST …/kill`` kills every process of the sandbox's commands,
the way back from a fork bomb.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from runtools.server.api.context import request_context, request_id_of
from runtools.server.api.envelope import (
    Envelope,
    RequestModel,
    WireModel,
    error_body,
    meta_of,
)
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.api.sandboxes import Env, SandboxOut, SandboxRef, sandbox_io
from runtools.server.domain.errors import ServiceError
from runtools.server.domain.principal import Principal
from runtools.server.sandbox.driver import ExecChunk, ExecEvent
from runtools.server.services.sandboxes.records import ExecRequest

router = tagged_router("sandboxes", "/v1/sandboxes")
logger = logging.getLogger("runtools.sandboxes")

EVENT_STREAM = "text/event-stream"
MAX_TIMEOUT_MS = 3_600_000
Executor = Annotated[Principal, requires(scope="sandbox:exec")]


class ExecIn(RequestModel):
    command: str = Field(min_length=1, max_length=65_536, examples=["npm test"])
    timeout: int = Field(default=30_000, ge=1, le=MAX_TIMEOUT_MS, description="Milliseconds")
    cwd: str = Field(default="/workspace", min_length=1, max_length=4096)
    env: Env = Field(default_factory=dict)
    # No NUL in any of them: RequestModel refuses it in every field, env included.

    def to_request(self) -> ExecRequest:
        return ExecRequest(
            command=self.command, cwd=self.cwd, env=self.env, timeout_ms=self.timeout
        )


class ExecOut(WireModel):
    stdout: str
    stderr: str
    exit_code: int = Field(description="128+N when killed by signal N")
    duration_ms: int
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool


_STREAM_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "Server-Sent Events: `stdout`, `stderr`, then `exit` (or `error`)",
        # One schema per event: its name and its data line (a JSON document).
        "content": {
            EVENT_STREAM: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "event": {"type": "string", "enum": ["stdout", "stderr", "exit", "error"]},
                        "data": {"type": "string", "contentMediaType": "application/json"},
                    },
                    "required": ["event", "data"],
                }
            }
        },
    }
}


@router.post("/{sandbox}/exec", name="exec", responses=_STREAM_RESPONSES)
async def exec_command(
    request: Request, sandbox: SandboxRef, body: ExecIn, principal: Executor
) -> Envelope[ExecOut]:
    """Run ``command`` with ``/bin/sh -c`` inside the sandbox and wait for it to end."""
    if EVENT_STREAM in request.headers.get("accept", ""):
        return await _stream(request, sandbox, body, principal)  # type: ignore[return-value]
    result = await sandbox_io(request).exec(
        principal, sandbox, body.to_request(), context=request_context(request)
    )
    return Envelope(
        data=ExecOut(
            stdout=result.stdout,
            stderr=result.stderr,
            exit_code=result.exit_code,
            duration_ms=result.duration_ms,
            stdout_truncated=result.stdout_truncated,
            stderr_truncated=result.stderr_truncated,
            timed_out=result.timed_out,
        ),
        meta=meta_of(request),
    )


@router.post(
    "/{sandbox}/exec/stream",
    name="exec-stream",
    response_class=StreamingResponse,
    responses=_STREAM_RESPONSES,
)
async def exec_command_stream(
    request: Request, sandbox: SandboxRef, body: ExecIn, principal: Executor
) -> Response:
    """Like ``exec``, but output arrives as Server-Sent Events while the command runs."""
    return await _stream(request, sandbox, body, principal)


@router.post("/{sandbox}/kill", name="kill")
async def kill_processes(
    request: Request, sandbox: SandboxRef, principal: Executor
) -> Envelope[SandboxOut]:
    """Kill every process of the sandbox's commands, running or left in the background.

    The sandbox stays ``running`` with its files; only its own init is left.
    This is how a sandbox at its process limit (``409 process_limit_reached``:
    a fork bomb, a runaway background job) is made usable again.
    """
    view = await sandbox_io(request).kill_processes(
        principal, sandbox, context=request_context(request)
    )
    return Envelope(data=SandboxOut.of(view), meta=meta_of(request))


async def _stream(request: Request, sandbox: str, body: ExecIn, principal: Principal) -> Response:
    events = await sandbox_io(request).exec_stream(
        principal, sandbox, body.to_request(), context=request_context(request)
    )
    return StreamingResponse(
        server_sent(events, request_id_of(request)),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def server_sent(events: AsyncIterator[ExecEvent], request_id: str) -> AsyncIterator[str]:
    try:
        async for event in events:
            if isinstance(event, ExecChunk):
                yield sse(event.stream, {"data": event.data})
            else:
                yield sse(
                    "exit",
                    {
                        "exitCode": event.exit_code,
                        "durationMs": event.duration_ms,
                        "timedOut": event.timed_out,
                        "stdoutTruncated": event.stdout_truncated,
                        "stderrTruncated": event.stderr_truncated,
                    },
                )
    except ServiceError as exc:
        yield sse("error", error_body(exc.code, exc.message, request_id))
    except Exception:
        logger.exception("exec stream failed for request %s", request_id)
        yield sse("error", error_body("internal_error", "Internal server error", request_id))

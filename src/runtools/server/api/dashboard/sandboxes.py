"""The sandboxes console: the list, creating one, a sandbox's page, its console, pause,
resume and destroy.

The console runs a command (``sh -c``, in ``/workspace``) and shows its output
on the next page, or as it comes for the page's script (Server-Sent Events, as
the API's ``exec/stream`` sends them). Running sandboxes is the services'
(``SandboxService``, ``SandboxIo``); no other page lives here.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Form, Query
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from runtools.server.api.context import request_id_of
from runtools.server.api.dashboard.visit import PAGE, FormField, Gate, Visit, older, page_router
from runtools.server.api.guards import PUBLIC, Requirement
from runtools.server.api.pages import SECURITY_HEADERS
from runtools.server.api.sandbox_exec import server_sent
from runtools.server.domain.errors import InvalidRequest, NotFound, ServiceError
from runtools.server.services.sandboxes.records import ExecRequest, NewSandbox, SandboxView

router = page_router()

BOXES = "/dashboard/sandboxes"
# What a console command may take, at most (the API allows longer: use it for those).
CONSOLE_TIMEOUT_MS = 60_000
# What the API's guards ask of the same calls (api/sandboxes.py, sandbox_exec.py).
READ_SANDBOXES = Gate(Requirement(scope="sandbox:read"), "Sandboxes", "sandboxes")
CREATE_SANDBOXES = Gate(Requirement(scope="sandbox:create"), "Sandboxes", "sandboxes")
CHANGE_SANDBOXES = Gate(Requirement(scope="sandbox:write"), "Sandboxes", "sandboxes")
EXEC_IN_SANDBOXES = Gate(Requirement(scope="sandbox:exec"), "Sandboxes", "sandboxes")


def _failed(visit: Visit, exc: ServiceError, back: str = BOXES) -> Response:
    return visit.message(
        exc.status_code, "Sandboxes", exc.message, "sandboxes", {"href": back, "text": "Back"}
    )


@router.get("/dashboard/sandboxes", name="dashboard-sandboxes")
async def sandboxes_page(
    request: Request,
    _: Annotated[None, PUBLIC],
    cursor: Annotated[str, Query(max_length=400)] = "",
) -> Response:
    if not isinstance(visit := await Visit.start(request, READ_SANDBOXES), Visit):
        return visit
    page = await visit.runtime.sandboxes.list_sandboxes(
        visit.principal,
        all_sandboxes=False,
        statuses=[],
        tags=[],
        template=None,
        limit=PAGE,
        cursor=cursor or None,
    )
    flash = await visit.take_flash()
    return visit.page(
        "sandboxes.html",
        title="Sandboxes",
        nav="sandboxes",
        sandboxes=page.items,
        more=older(BOXES, page.next_cursor),
        default_template=NewSandbox().template,
        notice=(flash or {}).get("notice"),
    )


@router.post("/dashboard/sandboxes", name="dashboard-sandbox-create")
async def create_sandbox(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    name: Annotated[str, Form(max_length=64)] = "",
    template: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf, CREATE_SANDBOXES), Visit):
        return visit
    new = NewSandbox(name=name.strip() or None, template=template.strip() or NewSandbox().template)
    try:
        view = await visit.runtime.sandboxes.create(visit.principal, new, context=visit.context)
    except ServiceError as exc:
        return _failed(visit, exc)
    return visit.redirect(f"{BOXES}/{view.id}")


@router.get("/dashboard/sandboxes/{sandbox}", name="dashboard-sandbox")
async def sandbox_page(request: Request, sandbox: str, _: Annotated[None, PUBLIC]) -> Response:
    """A sandbox: its status, pause/resume/destroy, and a console whose last run is shown."""
    if not isinstance(visit := await Visit.start(request, READ_SANDBOXES), Visit):
        return visit
    try:
        view: SandboxView = await visit.runtime.sandboxes.get(visit.principal, sandbox[:64])
    except NotFound as exc:
        return visit.not_found(exc)
    ran: dict[str, Any] | None = await visit.take_flash()
    if ran is not None and ran.get("sandbox") != view.id:
        ran = None
    return visit.page(
        "sandbox.html",
        title=f"Sandbox {view.name or view.id}",
        nav="sandboxes",
        box=view,
        ran=ran if ran and "command" in ran else None,
        notice=(ran or {}).get("notice"),
    )


def _command(command: str) -> ExecRequest | InvalidRequest:
    """The console's command as the API takes it, or what is wrong with it."""
    if not command.strip() or "\x00" in command:
        return InvalidRequest("Type a command to run.")
    return ExecRequest(command=command, timeout_ms=CONSOLE_TIMEOUT_MS)


@router.post("/dashboard/sandboxes/{sandbox}/exec", name="dashboard-sandbox-exec")
async def sandbox_exec(
    request: Request,
    sandbox: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    command: Annotated[str, Form(max_length=65_536)] = "",
) -> Response:
    """Run a command (``sh -c``, in ``/workspace``); its output is shown on the next page."""
    if not isinstance(visit := await Visit.posted(request, csrf, EXEC_IN_SANDBOXES), Visit):
        return visit
    here = f"{BOXES}/{quote(sandbox[:64])}"
    run = _command(command)
    if isinstance(run, InvalidRequest):
        return _failed(visit, run, here)
    try:
        result = await visit.runtime.sandbox_io.exec(
            visit.principal, sandbox[:64], run, context=visit.context
        )
    except NotFound as exc:
        return visit.not_found(exc)
    except ServiceError as exc:
        return _failed(visit, exc, here)
    visit.flash(
        {
            "sandbox": sandbox[:64],
            "command": command,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "exitCode": result.exit_code,
            "durationMs": result.duration_ms,
            "truncated": result.stdout_truncated or result.stderr_truncated,
            "timedOut": result.timed_out,
        }
    )
    return visit.redirect(here)


@router.post("/dashboard/sandboxes/{sandbox}/exec/stream", name="dashboard-sandbox-exec-stream")
async def sandbox_exec_stream(
    request: Request,
    sandbox: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    command: Annotated[str, Form(max_length=65_536)] = "",
) -> Response:
    """The console's command with its output as it comes (Server-Sent Events, as the
    API's ``exec/stream`` sends them), for the page's script; without it the console
    posts to ``exec``. Anything refused is answered before output, and the script
    then posts the form as a page would."""
    if not isinstance(visit := await Visit.posted(request, csrf, EXEC_IN_SANDBOXES), Visit):
        return visit
    run = _command(command)
    if isinstance(run, InvalidRequest):
        return _failed(visit, run)
    try:
        events = await visit.runtime.sandbox_io.exec_stream(
            visit.principal, sandbox[:64], run, context=visit.context
        )
    except NotFound as exc:
        return visit.not_found(exc)
    except ServiceError as exc:
        return _failed(visit, exc)
    response = StreamingResponse(
        server_sent(events, request_id_of(request)),
        media_type="text/event-stream",
        headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
    )
    visit.cookies.apply(response)
    return response


@router.post("/dashboard/sandboxes/{sandbox}/{action}", name="dashboard-sandbox-change")
async def sandbox_change(
    request: Request,
    sandbox: str,
    action: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
) -> Response:
    """Pause, resume or destroy."""
    if not isinstance(visit := await Visit.posted(request, csrf, CHANGE_SANDBOXES), Visit):
        return visit
    service = visit.runtime.sandboxes
    steps = {"pause": service.pause, "resume": service.resume, "destroy": service.destroy}
    step = steps.get(action)
    if step is None:
        return visit.not_found(NotFound(f"No sandbox action {action[:20]!r}"))
    here = f"{BOXES}/{quote(sandbox[:64])}"
    try:
        view = await step(visit.principal, sandbox[:64], context=visit.context)
    except NotFound as exc:
        return visit.not_found(exc)
    except ServiceError as exc:
        return _failed(visit, exc, here)
    visit.flash({"sandbox": view.id, "notice": f"Sandbox {view.name or view.id} is {view.status}."})
    return visit.redirect(BOXES if action == "destroy" else here)

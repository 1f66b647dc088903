"""``/dashboard`` itself (a redirect to the API keys) and the dashboard's static files.

The stylesheet and the script are the only ones the pages load: no inline
code, no CDN. No page that needs a signed-in person lives here.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from runtools.server.api.dashboard.visit import KEYS, page_router
from runtools.server.api.guards import PUBLIC
from runtools.server.api.pages import SECURITY_HEADERS

router = page_router()

STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}


@router.get("/dashboard", name="dashboard-home")
async def dashboard_home(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    return RedirectResponse(KEYS, status_code=303)


@router.get("/dashboard/static/{name}", name="dashboard-static")
async def dashboard_static(request: Request, name: str, _: Annotated[None, PUBLIC]) -> Response:
    """The dashboard's stylesheet and script (the only ones: no inline code, no CDN)."""
    if name not in STATIC:
        return Response("Not found", status_code=404, media_type="text/plain")
    body = resources.files("runtools.server.api").joinpath("static", name).read_bytes()
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(body, media_type=STATIC[name], headers=headers)

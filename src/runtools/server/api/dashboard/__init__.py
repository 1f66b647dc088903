"""``/dashboard``: the server-rendered pages, one module a family, in one router.

Every action is a form post answered by a redirect (POST, redirect, GET), so
each works without JavaScript and a reload never repeats it; each form
carries the session's CSRF token, checked before anything is done. What every
page shares (the signed-in visit, the CSRF check, rendering, the message
pages) is ``visit``'s; each family's pages and choices are its own module's,
and its rules the services'. These routes are ``PUBLIC`` to the guard walk
because they authenticate with the session cookie themselves
(``pages.signed_in``). Only the router's assembly lives here: its order is
the order the routes match in (``new`` before ``{key_id}``).
"""

from __future__ import annotations

from runtools.server.api.dashboard import (
    audit,
    home,
    keys,
    projects,
    reauth,
    sandboxes,
    sessions,
    ssh_keys,
    team,
)
from runtools.server.api.dashboard.visit import page_router

router = page_router()
for _family in (home, keys, reauth, sessions, ssh_keys, audit, team, sandboxes, projects):
    router.routes.extend(_family.router.routes)

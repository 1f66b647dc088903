"""Sandboxes as the API offers them: records, lifecycle, commands and files, upkeep.

``service`` holds the lifecycle (create, pause, resume, destroy, quotas and
the node's budget), ``records`` the wire view, ``states`` the allowed
transitions, ``io`` commands and files, ``upkeep`` the background rounds
(idle pause, dead sandboxes), ``transactions`` the unit of work in a worker
thread. The isolation itself is the driver's (``runtools.server.sandbox``);
nothing here builds a namespace. Every query is in
``store/repositories/sandboxes.py``; nothing here imports SQLAlchemy but for
type hints.
"""

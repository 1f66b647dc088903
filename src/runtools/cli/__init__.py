"""The ``runtools`` command.

Importing this module needs only the light client dependencies; commands
that run the server or touch its database import the server lazily.
"""

from __future__ import annotations

from runtools.cli.app import app, main

__all__ = ["app", "main"]

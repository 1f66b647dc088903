"""The version of runtools: the one place it is written.

pyproject.toml reads it from here (``[tool.setuptools.dynamic]``), so the
distribution's metadata, the SDK's ``__version__`` and ``User-Agent``, the
CLI's ``--version`` and the API's OpenAPI ``info.version`` all say the same;
``tests/test_version.py`` holds them to it. It is a literal, not read from
installed metadata, so a source tree that was never installed knows it too.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"

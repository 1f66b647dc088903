"""The SDK's version, sent in ``User-Agent`` so the server can tell clients apart."""

from __future__ import annotations

__all__ = ["__version__"]

# Kept in step with pyproject.toml by hand: reading installed metadata here
# would fail when the package runs from a source tree that was never installed.
__version__ = "0.1.0"

"""``SecretRegistry``: every plaintext credential the suite has seen.

Tests add each secret they mint (``secret_registry.add(key)``); the suite's
session fixture fails the run if any of them reached a log record.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SecretRegistry:
    """Every plaintext credential the suite has seen."""

    values: set[str] = field(default_factory=set)

    def add(self, secret: str) -> str:
        self.values.add(secret)
        return secret

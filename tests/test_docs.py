"""The docs keep up with the code."""

from __future__ import annotations

from pathlib import Path

from runtools.server.domain.scopes import CATALOG
from runtools.server.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [
        f"RUNTOOLS_{name.upper()}"
        for name in Settings.model_fields
        if f"`RUNTOOLS_{name.upper()}`" not in text
    ]
    assert not missing, f"undocumented settings: {missing}"


def test_every_scope_is_documented() -> None:
    text = (DOCS / "api.md").read_text()
    assert not [s for s in CATALOG if f"`{s}`" not in text]

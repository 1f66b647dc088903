"""One version everywhere: what pip, the SDK, the CLI and the API report agree.

The version is written once, in ``runtools/_version.py``; pyproject.toml
reads it from there. A release that bumps it and forgets a reinstall, or a
copy of the number that creeps back in, fails here.
"""

from __future__ import annotations

import importlib.metadata
import os
import tomllib
from pathlib import Path

from runtools import __version__
from runtools.server.app import create_app, runtime_of
from runtools.server.settings import Settings
from support.live_server import runtools

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_takes_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "runtools._version.__version__"}


def test_the_distribution_the_sdk_the_cli_and_the_api_report_one_version(
    tmp_path: Path, database_url: str | None
) -> None:
    assert importlib.metadata.version("runtools-platform") == __version__

    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    assert runtools("--version", env=env).stdout == f"runtools {__version__}\n"

    app = create_app(Settings(home=tmp_path / "home", database_url=database_url, _env_file=None))
    try:
        assert app.openapi()["info"]["version"] == __version__
    finally:
        runtime_of(app).close()

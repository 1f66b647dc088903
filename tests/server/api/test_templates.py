"""Templates over real HTTP and the operator's command line, with real isolation.

An operator imports a root filesystem (``runtools admin templates import``),
callers list it (``GET /v1/templates``, ``rt.templates.list()``, ``runtools
sandbox templates``) and create sandboxes from it; a template in use is not
removed; an unknown one is a 400 naming those there are.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtools import RunTools
from runtools.server.settings import Settings
from support.cli import CommandLine
from support.rootfs import build_rootfs, rootfs_tar
from support.served_app import Caller, ServedApp


@pytest.fixture(scope="module")
def tiny_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tiny")
    rootfs = base / "rootfs"
    rootfs.mkdir()
    return rootfs_tar(build_rootfs(rootfs), base / "tiny.tar.gz")


@pytest.fixture
def admin(sandbox_settings: Settings) -> CommandLine:
    env = {"RUNTOOLS_HOME": str(sandbox_settings.home)}
    if sandbox_settings.database_url:
        env["RUNTOOLS_DATABASE_URL"] = sandbox_settings.database_url
    return CommandLine(env)


def test_an_imported_template_is_listed_and_sandboxes_start_from_it(
    served: ServedApp, ada: Caller, admin: CommandLine, tiny_tar: Path
) -> None:
    imported = admin("admin", "templates", "import", "tiny", str(tiny_tar), "--json").json
    assert imported["name"] == "tiny"
    assert imported["description"] == "Tiny Test Linux 1.0"
    assert imported["kind"] == "imported"

    listed = ada.get("/v1/templates")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [(t["name"], t["aliases"], t["isDefault"]) for t in body["data"]] == [
        ("host-debian", ["base-ubuntu"], True),
        ("tiny", [], False),
    ]
    assert body["meta"]["hasMore"] is False
    assert set(body["data"][1]) == {
        "name", "kind", "description", "isDefault", "aliases", "size", "files", "importedAt",
    }  # fmt: skip
    with RunTools(api_key=ada.key, base_url=served.url) as rt:
        assert [t.name for t in rt.templates.list()] == ["host-debian", "tiny"]

    created = ada.post("/v1/sandboxes", json={"template": "tiny", "name": "small"})
    assert created.status_code == 201, created.text
    assert created.json()["data"]["template"] == "tiny"
    ran = ada.post("/v1/sandboxes/small/exec", json={"command": "cat /etc/os-release /marker"})
    assert ran.json()["data"]["stdout"].startswith('PRETTY_NAME="Tiny Test Linux 1.0"')
    # The default keeps its documented name, and is the host's userland.
    default = ada.post("/v1/sandboxes", json={})
    assert default.json()["data"]["template"] == "base-ubuntu"
    sid = default.json()["data"]["id"]
    host = ada.post(f"/v1/sandboxes/{sid}/exec", json={"command": "test -e /marker; echo $?"})
    assert host.json()["data"]["stdout"] == "1\n"

    # In use: neither removed nor replaced.
    refused = admin("admin", "templates", "remove", "tiny", check=False)
    assert refused.exit_code != 0
    assert "in use by 1 sandbox" in refused.stderr
    again = admin("admin", "templates", "import", "tiny", str(tiny_tar), "--replace", check=False)
    assert "in use by 1 sandbox" in again.stderr
    assert ada.delete("/v1/sandboxes/small").status_code == 200
    assert admin("admin", "templates", "remove", "tiny", "--json").json == {
        "name": "tiny",
        "removed": True,
    }
    assert [t["name"] for t in ada.get("/v1/templates").json()["data"]] == ["host-debian"]
    assert not any((served.runtime.settings.sandbox_root / "templates").iterdir())


def test_unknown_templates_are_a_400_naming_those_there_are(ada: Caller) -> None:
    response = ada.post("/v1/sandboxes", json={"template": "windows-11"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"] == (
        "unknown sandbox template 'windows-11'; available: host-debian, base-ubuntu"
    )
    assert error["requestId"]
    # Nothing was recorded.
    assert ada.get("/v1/sandboxes").json()["data"] == []


def test_listing_templates_takes_sandbox_read(served: ServedApp, ada: Caller) -> None:
    reader = served.caller("acme", "ada@example.com", scopes=["sandbox:read"])
    assert reader.get("/v1/templates").status_code == 200
    runner = served.caller("acme", "ada@example.com", scopes=["sandbox:exec"])
    refused = runner.get("/v1/templates")
    assert refused.status_code == 403
    assert "sandbox:read" in refused.json()["error"]["message"]
    anonymous = reader.http.get("/v1/templates", headers={"X-API-Key": ""})
    assert anonymous.status_code == 401


def test_admin_templates_list_and_refusals(admin: CommandLine, tiny_tar: Path) -> None:
    listed = admin("admin", "templates", "list", "--json").json
    assert [t["name"] for t in listed] == ["host-debian"]
    human = admin("admin", "templates", "list").stdout
    assert "host-debian, base-ubuntu" in human
    assert "host" in human
    bad = admin("admin", "templates", "import", "Bad Name", str(tiny_tar), check=False)
    assert bad.exit_code != 0
    assert "invalid template name" in bad.stderr
    admin("admin", "templates", "import", "tiny", str(tiny_tar))
    twice = admin("admin", "templates", "import", "tiny", str(tiny_tar), check=False)
    assert "already exists; pass --replace" in twice.stderr
    host = admin("admin", "templates", "remove", "host-debian", check=False)
    assert "cannot be removed" in host.stderr
    missing = admin("admin", "templates", "remove", "nothing", check=False)
    assert "No template 'nothing'" in missing.stderr

"""Directories over real HTTP: a tar in, unpacked all or nothing; a directory out as a tar."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from runtools.server.settings import Settings
from support.served_app import Caller, ServedApp

ARCHIVE = "/v1/sandboxes/{}/files/archive"


@pytest.fixture
def sandbox_settings(sandbox_settings: Settings) -> Settings:
    return sandbox_settings.model_copy(update={"sandbox_max_archive_bytes": 2 * 1024 * 1024})


def sandbox(caller: Caller) -> str:
    response = caller.post("/v1/sandboxes", json={})
    assert response.status_code == 201, response.text
    sandbox_id: str = response.json()["data"]["id"]
    return sandbox_id


def exec_out(caller: Caller, sid: str, command: str) -> str:
    data: dict[str, Any] = caller.post(
        f"/v1/sandboxes/{sid}/exec", json={"command": command}
    ).json()["data"]
    return str(data["stdout"])


def tar_of(
    files: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] | None = None
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def chunks(data: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_five_hundred_files_in_one_call_and_back_as_a_tar(ada: Caller) -> None:
    sid = sandbox(ada)
    files = {f"pkg/mod{i:03}.py": f"VALUE = {i}\n".encode() for i in range(500)}
    body = tar_of(files)
    # Streamed: sent in pieces (chunked), never needing a length up front.
    put = ada.put(ARCHIVE.format(sid), params={"path": "project"}, content=chunks(body))
    assert put.status_code == 200, put.text
    size = sum(map(len, files.values()))
    assert put.json()["data"] == {"path": "/workspace/project", "files": 500, "size": size}
    assert exec_out(ada, sid, "ls project/pkg | wc -l; cat project/pkg/mod499.py") == (
        "500\nVALUE = 499\n"
    )

    got = ada.get(ARCHIVE.format(sid), params={"path": "/workspace/project"})
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/x-tar"
    assert 'filename="project.tar"' in got.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(got.content)) as archive:
        back = {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isfile()
        }
    assert back == files


@pytest.mark.parametrize(
    ("files", "links"),
    [
        ({"ok.txt": b"ok", "../../etc/evil": b"x"}, None),
        ({"ok.txt": b"ok", "/etc/evil": b"x"}, None),
        ({"ok.txt": b"ok"}, {"out": "/etc/passwd"}),
        ({"ok.txt": b"ok"}, {"out": "../../../../etc"}),
    ],
    ids=["dotdot", "absolute", "absolute-link", "link-out"],
)
def test_traversal_is_a_400_and_nothing_is_written(
    ada: Caller, files: dict[str, bytes], links: dict[str, str] | None
) -> None:
    sid = sandbox(ada)
    response = ada.put(
        ARCHIVE.format(sid), params={"path": "dest"}, content=tar_of(files, links=links)
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["requestId"]
    assert exec_out(ada, sid, "ls -A /workspace /tmp") == "/tmp:\n\n/workspace:\n"


def test_bad_archives_and_targets_are_400s(ada: Caller) -> None:
    sid = sandbox(ada)
    not_tar = ada.put(ARCHIVE.format(sid), params={"path": "x"}, content=b"plain text" * 100)
    assert not_tar.status_code == 400
    assert "tar" in not_tar.json()["error"]["message"]
    outside = ada.put(ARCHIVE.format(sid), params={"path": "/etc"}, content=tar_of({"a": b"a"}))
    assert outside.status_code == 400
    assert ada.get(ARCHIVE.format(sid), params={"path": "/etc"}).status_code == 400
    missing = ada.get(ARCHIVE.format(sid), params={"path": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_an_archive_over_its_limit_is_a_413_and_leaves_nothing(
    served: ServedApp, ada: Caller
) -> None:
    sid = sandbox(ada)
    limit = served.runtime.settings.sandbox_max_archive_bytes
    big = tar_of({"blob": b"\0" * (limit + 1024)}, mode="w")
    response = ada.put(ARCHIVE.format(sid), params={"path": "big"}, content=chunks(big))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert exec_out(ada, sid, "ls -A /workspace") == ""


def test_another_tenants_sandbox_is_404(ada: Caller, eve: Caller) -> None:
    sid = sandbox(ada)
    body = tar_of({"a": b"a"})
    assert eve.put(ARCHIVE.format(sid), params={"path": "x"}, content=body).status_code == 404
    assert eve.get(ARCHIVE.format(sid)).status_code == 404
    assert exec_out(ada, sid, "ls -A /workspace") == ""

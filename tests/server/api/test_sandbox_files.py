"""Files over real HTTP: raw bytes in and out, confined to the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from support.served_app import Caller, ServedApp


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


def test_upload_download_and_list(ada: Caller) -> None:
    sid = sandbox(ada)
    payload = bytes(range(256)) * 100
    put = ada.put(f"/v1/sandboxes/{sid}/files", params={"path": "src/data.bin"}, content=payload)
    assert put.status_code == 200, put.text
    # Named as listings name it: by its absolute path.
    assert put.json()["data"] == {"path": "/workspace/src/data.bin", "size": len(payload)}
    got = ada.get(f"/v1/sandboxes/{sid}/files", params={"path": "/workspace/src/data.bin"})
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.content == payload
    # The command side sees the same file, owned by the sandbox user.
    assert exec_out(ada, sid, "wc -c < src/data.bin") == f"{len(payload)}\n"
    listing = ada.get(f"/v1/sandboxes/{sid}/files/list").json()["data"]
    assert [(e["name"], e["type"]) for e in listing] == [("src", "directory")]
    inner = ada.get(f"/v1/sandboxes/{sid}/files/list", params={"path": "src"}).json()["data"]
    assert inner[0]["path"] == "/workspace/src/data.bin"
    assert inner[0]["size"] == len(payload)


def test_paths_out_of_the_sandbox_are_refused(ada: Caller) -> None:
    sid = sandbox(ada)
    exec_out(ada, sid, "ln -s /etc/shadow leak; ln -s / root; mkdir d; ln -s ../../etc up")
    for path in ("../etc/passwd", "/etc/passwd", "leak", "root/etc/hostname", "d/../../x", "up"):
        response = ada.get(f"/v1/sandboxes/{sid}/files", params={"path": path})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["code"] == "invalid_request"
    write = ada.put(f"/v1/sandboxes/{sid}/files", params={"path": "root/etc/x"}, content=b"x")
    assert write.status_code == 400


def test_missing_file_is_404_and_directory_is_400(ada: Caller) -> None:
    sid = sandbox(ada)
    missing = ada.get(f"/v1/sandboxes/{sid}/files", params={"path": "nope.txt"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    # The sandbox is fine: a missing file does not mark it failed.
    assert ada.get(f"/v1/sandboxes/{sid}").json()["data"]["status"] == "running"
    assert ada.get(f"/v1/sandboxes/{sid}/files", params={"path": "/tmp"}).status_code == 400


def test_uploads_have_their_own_size_limit(served: ServedApp, ada: Caller) -> None:
    sid = sandbox(ada)
    limit = served.runtime.settings.sandbox_max_file_bytes
    json_limit = served.runtime.settings.max_body_bytes
    assert limit > json_limit
    big = b"a" * (json_limit + 1)  # over the JSON limit, within the file limit
    assert (
        ada.put(f"/v1/sandboxes/{sid}/files", params={"path": "big"}, content=big).status_code
        == 200
    )
    too_big = ada.put(
        f"/v1/sandboxes/{sid}/files", params={"path": "huge"}, content=b"a" * (limit + 1)
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "payload_too_large"
    # JSON routes keep the small limit.
    padded = {"command": "true", "env": {"PAD": "x" * 30_000}}
    many = {"command": "x" * 60_000, **{"cwd": "/workspace"}}
    assert ada.post(f"/v1/sandboxes/{sid}/exec", json=padded).status_code == 200
    assert ada.post(f"/v1/sandboxes/{sid}/exec", json=many).status_code != 413
    body = b'{"command": "' + b"y" * (json_limit + 10) + b'"}'
    response = ada.post(
        f"/v1/sandboxes/{sid}/exec", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_a_failed_upload_leaves_the_old_file_whole(ada: Caller) -> None:
    created = ada.post("/v1/sandboxes", json={"resources": {"disk": 16}})
    sid = created.json()["data"]["id"]
    keep = ada.put(f"/v1/sandboxes/{sid}/files", params={"path": "keep.txt"}, content=b"important")
    assert keep.status_code == 200
    exec_out(ada, sid, "head -c 14m /dev/zero > fill")  # most of the 16 MiB
    too_much = ada.put(
        f"/v1/sandboxes/{sid}/files", params={"path": "keep.txt"}, content=b"N" * (3 << 20)
    )
    assert too_much.status_code == 413
    assert "no space left" in too_much.json()["error"]["message"]
    got = ada.get(f"/v1/sandboxes/{sid}/files", params={"path": "keep.txt"})
    assert got.content == b"important"  # not truncated, not half-written
    assert exec_out(ada, sid, "ls -A") == "fill\nkeep.txt\n"  # nothing left behind


def test_an_upload_keeps_the_files_mode(ada: Caller) -> None:
    sid = sandbox(ada)
    exec_out(ada, sid, "printf 'echo one' > run.sh; chmod 750 run.sh")
    put = ada.put(f"/v1/sandboxes/{sid}/files", params={"path": "run.sh"}, content=b"echo two")
    assert put.status_code == 200
    assert exec_out(ada, sid, "stat -c %a run.sh; ./run.sh") == "750\ntwo\n"


def test_a_name_too_long_for_the_filesystem_is_a_400(ada: Caller) -> None:
    sid = sandbox(ada)
    path = "/workspace/" + "a" * 300
    for response in (
        ada.put(f"/v1/sandboxes/{sid}/files", params={"path": path}, content=b"x"),
        ada.get(f"/v1/sandboxes/{sid}/files", params={"path": path}),
        ada.get(f"/v1/sandboxes/{sid}/files/list", params={"path": path}),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_request"


def test_an_upload_of_unknown_length_is_written_as_it_comes_and_refused_past_the_limit(
    served: ServedApp, ada: Caller
) -> None:
    sid = sandbox(ada)
    limit = served.runtime.settings.sandbox_max_file_bytes

    def chunks(total: int) -> Iterator[bytes]:
        sent = 0
        while sent < total:
            piece = min(1 << 20, total - sent)
            sent += piece
            yield b"z" * piece

    fits = ada.put(f"/v1/sandboxes/{sid}/files", params={"path": "ok.bin"}, content=chunks(3 << 20))
    assert fits.status_code == 200, fits.text
    assert fits.json()["data"] == {"path": "/workspace/ok.bin", "size": 3 << 20}
    assert exec_out(ada, sid, "wc -c < ok.bin") == f"{3 << 20}\n"
    over = ada.put(
        f"/v1/sandboxes/{sid}/files", params={"path": "over.bin"}, content=chunks(limit + 1)
    )
    assert over.status_code == 413
    assert over.json()["error"]["code"] == "payload_too_large"
    assert exec_out(ada, sid, "ls -A") == "ok.bin\n"  # no part of it, under any name

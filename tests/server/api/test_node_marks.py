"""A single node (SQLite) takes no forwarded calls: a node mark from a client is a 403."""

from __future__ import annotations

import time

from runtools.server.domain.node_mark import NodeMark, seal
from support.served_app import Caller


def test_a_node_mark_sent_by_a_client_is_refused_before_anything_runs(ada: Caller) -> None:
    sandbox = ada.post("/v1/sandboxes", json={"name": "m"}).json()["data"]
    target = f"/v1/sandboxes/{sandbox['id']}/exec"
    mark = seal(NodeMark("n2", time.time(), "POST", target, "req_chosen", "203.0.113.1"), b"k" * 32)
    refused = ada.post(
        target, json={"command": "touch /workspace/ran"}, headers={"X-Runtools-Forwarded": mark}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert refused.headers["X-Request-Id"] != "req_chosen"
    listed = ada.get(f"/v1/sandboxes/{sandbox['id']}/files/list").json()["data"]
    assert listed == []  # the command never ran

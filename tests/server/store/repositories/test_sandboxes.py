"""Sandbox records: creations on one node are serialised, whatever the organization."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from runtools.server.runtime import Runtime
from runtools.server.services.sandboxes.states import LIVE
from runtools.server.store.models import Sandbox
from runtools.server.store.repositories import sandboxes as repo
from support.tenants import Member

NODE = "node-a"


def _claim(runtime: Runtime, member: Member, seen: list[int], hold: threading.Event) -> None:
    """What a create does: lock, read the node's promised memory, insert; then wait."""
    with runtime.database.session() as session:
        repo.lock_org(session, member.org_id)
        repo.lock_node(session, NODE)
        seen.append(repo.memory_promised(session, NODE, LIVE))
        now = datetime.now(UTC)
        session.add(
            Sandbox(
                id=f"sbx_{member.org_name}", org_id=member.org_id, owner_user_id=member.user_id,
                name=None, template="base-ubuntu", status="creating", status_message=None,
                tags=[], env_keys=[], project_id=None, idle_timeout=None, vcpus=1.0,
                memory_mib=512, disk_mib=1024, node=NODE, last_activity_at=now,
                created_at=now, updated_at=now, destroyed_at=None,
            )
        )  # fmt: skip
        session.flush()
        hold.wait(timeout=30)
        session.commit()


def test_a_second_create_on_the_node_waits_and_sees_the_first(
    runtime: Runtime, admin: Member, outsider: Member
) -> None:
    assert admin.org_id != outsider.org_id  # the organizations' own lock does not apply
    seen: list[int] = []
    first_done, released = threading.Event(), threading.Event()
    released.set()
    first = threading.Thread(target=_claim, args=(runtime, admin, seen, first_done))
    second = threading.Thread(target=_claim, args=(runtime, outsider, seen, released))
    first.start()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    second.start()
    time.sleep(0.5)
    assert seen == [0], "the second create read the node's memory before the first ended"
    first_done.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert seen == [0, 512]

"""Sandbox records: creations on one node are serialised, whatever the organization;
a name is taken once among the live; statuses move only from where they are allowed to."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from runtools.server.domain.clock import as_utc
from runtools.server.runtime import Runtime
from runtools.server.services.sandboxes.states import LIVE
from runtools.server.store.models import Sandbox, SandboxTag
from runtools.server.store.repositories import sandboxes as repo
from support.tenants import Member

NODE = "node-a"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _insert(
    session: Session,
    member: Member,
    sandbox_id: str,
    *,
    name: str | None = None,
    tags: list[str] | None = None,
    env_keys: list[str] | None = None,
) -> Sandbox:
    return repo.insert(
        session,
        sandbox_id=sandbox_id,
        org_id=member.org_id,
        owner_user_id=member.user_id,
        name=name,
        template="base-ubuntu",
        status="creating",
        tags=tags or [],
        env_keys=env_keys or [],
        project_id=None,
        idle_timeout=None,
        vcpus=1.0,
        memory_mib=512,
        disk_mib=1024,
        node=NODE,
        now=NOW,
    )


def _claim(runtime: Runtime, member: Member, seen: list[int], hold: threading.Event) -> None:
    """What a create does: lock, read the node's promised memory, insert; then wait."""
    with runtime.database.session() as session:
        repo.lock_org(session, member.org_id)
        repo.lock_node(session, NODE)
        seen.append(repo.memory_promised(session, NODE, LIVE))
        _insert(session, member, f"sbx_{member.org_name}")
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


def test_insert_records_the_sandbox_and_its_tags(runtime: Runtime, admin: Member) -> None:
    with runtime.database.session() as session:
        _insert(session, admin, "sandbox-a", name="web", tags=["ci", "team=a"], env_keys=["K"])
        session.commit()
    with runtime.database.session() as session:
        row = repo.get_one(session, "sandbox-a")
        assert (row.name, row.status, row.tags, row.env_keys) == (
            "web",
            "creating",
            ["ci", "team=a"],
            ["K"],
        )
        assert row.status_message is None
        assert row.destroyed_at is None
        stored = {t.tag for t in session.query(SandboxTag).filter_by(sandbox_id="sandbox-a")}
        assert stored == {"ci", "team=a"}
        assert repo.get(session, "sandbox-missing") is None


def test_a_name_is_taken_once_among_sandboxes_not_destroyed(
    runtime: Runtime, admin: Member, outsider: Member
) -> None:
    with runtime.database.session() as session:
        _insert(session, admin, "sandbox-a", name="web")
        session.commit()
    with runtime.database.session() as session, pytest.raises(repo.NameTaken):
        _insert(session, admin, "sandbox-b", name="web")
    with runtime.database.session() as session:
        assert repo.get(session, "sandbox-b") is None  # nothing half written
        _insert(session, outsider, "sandbox-c", name="web")  # another organization's
        assert repo.transition(
            session, "sandbox-a", allowed_from={"creating"}, to="destroyed", now=NOW
        )
        _insert(session, admin, "sandbox-d", name="web")  # the name is free again
        session.commit()
    with runtime.database.session() as session:
        found = repo.find(session, admin.org_id, "web")
        assert found is not None
        assert found.id == "sandbox-d"
        assert repo.get_one(session, "sandbox-a").destroyed_at is not None


def test_transition_moves_only_from_an_allowed_status(runtime: Runtime, admin: Member) -> None:
    later = NOW + timedelta(minutes=5)
    with runtime.database.session() as session:
        _insert(session, admin, "sandbox-a")
        session.commit()
    with runtime.database.session() as session:
        assert not repo.transition(
            session, "sandbox-a", allowed_from={"running"}, to="pausing", now=later
        )
        assert repo.transition(
            session, "sandbox-a", allowed_from={"creating"}, to="running", now=later, touch=True
        )
        session.commit()
    with runtime.database.session() as session:
        row = repo.get_one(session, "sandbox-a")
        assert row.status == "running"
        assert as_utc(row.last_activity_at) == later


def test_status_of_reads_what_is_stored_now(runtime: Runtime, admin: Member) -> None:
    with runtime.database.session() as session:
        _insert(session, admin, "sandbox-a")
        session.commit()
    with runtime.database.session() as session:
        row = repo.get_one(session, "sandbox-a")
        with runtime.database.session() as other:
            repo.transition(other, "sandbox-a", allowed_from={"creating"}, to="failed", now=NOW)
            other.commit()
        assert row.status == "creating"  # what this session loaded
        assert repo.status_of(session, "sandbox-a") == "failed"


def test_touch_and_remove(runtime: Runtime, admin: Member) -> None:
    later = NOW + timedelta(hours=1)
    with runtime.database.session() as session:
        _insert(session, admin, "sandbox-a")
        _insert(session, admin, "sandbox-b", tags=["x"])
        session.commit()
    with runtime.database.session() as session:
        repo.touch(session, repo.get_one(session, "sandbox-a"), later)
        repo.remove(session, "sandbox-b")
        session.commit()
    with runtime.database.session() as session:
        row = repo.get_one(session, "sandbox-a")
        assert as_utc(row.last_activity_at) == later
        assert as_utc(row.updated_at) == NOW
        assert repo.get(session, "sandbox-b") is None
        assert session.query(SandboxTag).filter_by(sandbox_id="sandbox-b").count() == 0

"""The device grant issues tokens exactly once, though the CLI's polls may race."""

from __future__ import annotations

import threading

from runtools.server.domain.audit import RequestContext
from runtools.server.domain.errors import OAuthError
from runtools.server.domain.principal import Principal
from runtools.server.runtime import Runtime
from runtools.server.services.sessions.issuing import TokenPair
from support.principals import principal
from support.secret_registry import SecretRegistry
from support.tenants import Member

RACERS = 6
CONTEXT = RequestContext(request_id="req_device", ip="198.51.100.7")


def _signed_in(member: Member) -> Principal:
    return principal(
        org_id=member.org_id,
        org_name=member.org_name,
        user_id=member.user_id,
        user_email=member.email,
        credential_type="session",
        credential_id="ses_approver",
    )


def test_racing_polls_of_an_approved_grant_issue_one_token_pair(
    runtime: Runtime, admin: Member, secret_registry: SecretRegistry
) -> None:
    grant = runtime.devices.start("runtools-cli", CONTEXT)
    secret_registry.add(grant.device_code)
    runtime.devices.decide(_signed_in(admin), grant.user_code, "approve", CONTEXT)
    barrier = threading.Barrier(RACERS)
    issued: list[TokenPair] = []
    refused: list[str] = []

    def poll() -> None:
        barrier.wait()
        try:
            pair = runtime.devices.poll(grant.device_code, "runtools-cli", CONTEXT)
        except OAuthError as exc:
            refused.append(exc.code)
        else:
            secret_registry.add(pair.access_token)
            secret_registry.add(pair.refresh_token)
            issued.append(pair)

    threads = [threading.Thread(target=poll) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(issued) == 1
    assert len(refused) == RACERS - 1
    assert set(refused) <= {"invalid_grant", "slow_down"}
    listed = runtime.sessions.list_sessions(_signed_in(admin), limit=50, cursor=None)
    assert [s.id for s in listed.items] == [issued[0].session_id]

"""``rt.auth``: what a signed-in session does about signing in: hand out its
access token, approve devices, switch organization, sign out.

Starting a sign-in needs no credential at all; that is
:class:`runtools.DeviceLogin`.
"""

from __future__ import annotations

from typing import Literal

from runtools._models import DeviceApproval, SessionTokens
from runtools._resource import AsyncResource, SyncResource

__all__ = ["AsyncAuth", "Auth"]


def _switch(org: str) -> dict[str, str]:
    if not org.strip():
        raise ValueError("org must be a non-empty organization name")
    return {"org": org.strip()}


def _decision(user_code: str, action: Literal["approve", "deny"]) -> dict[str, str]:
    if not user_code.strip():
        raise ValueError("user_code must be a non-empty string")
    return {"userCode": user_code.strip(), "action": action}


class Auth(SyncResource):
    def access_token(self) -> str:
        """This session's access token, for tools that send HTTP themselves.

        A stored login (``runtools login``) is refreshed first when its token
        has less than a minute left. The token lives minutes: ask again
        rather than keep it. A client on an API key has none (``ValueError``).
        """
        return self._client._fresh_access_token()

    def approve_device(self, user_code: str) -> DeviceApproval:
        """Let the device showing ``user_code`` sign in as you, in your current organization."""
        body = _decision(user_code, "approve")
        return self._client._request("POST", "/auth/device/verify", json=body).model(DeviceApproval)

    def deny_device(self, user_code: str) -> DeviceApproval:
        body = _decision(user_code, "deny")
        return self._client._request("POST", "/auth/device/verify", json=body).model(DeviceApproval)

    def logout(self) -> None:
        """End this session on the server: its tokens stop working at once."""
        self._client._request("POST", "/auth/logout")

    def switch_org(self, org: str) -> SessionTokens:
        """End this session and start one in ``org``, another of your organizations.

        A client on the stored login (``runtools login``) goes on as the new
        session, and the stored login with it. A client given its token
        explicitly cannot: that token stops working, continue with the
        returned ones, e.g. ``RunTools(access_token=tokens.access_token)``.
        """
        envelope = self._client._request("POST", "/auth/switch-org", json=_switch(org))
        tokens = envelope.model(SessionTokens)
        self._client._carry_stored_login(tokens)
        return tokens


class AsyncAuth(AsyncResource):
    async def access_token(self) -> str:
        """This session's access token; as :meth:`Auth.access_token`."""
        return await self._client._fresh_access_token()

    async def approve_device(self, user_code: str) -> DeviceApproval:
        """Let the device showing ``user_code`` sign in as you, in your current organization."""
        body = _decision(user_code, "approve")
        envelope = await self._client._request("POST", "/auth/device/verify", json=body)
        return envelope.model(DeviceApproval)

    async def deny_device(self, user_code: str) -> DeviceApproval:
        body = _decision(user_code, "deny")
        envelope = await self._client._request("POST", "/auth/device/verify", json=body)
        return envelope.model(DeviceApproval)

    async def logout(self) -> None:
        """End this session on the server: its tokens stop working at once."""
        await self._client._request("POST", "/auth/logout")

    async def switch_org(self, org: str) -> SessionTokens:
        """End this session and start one in ``org``, another of your organizations.

        As :meth:`Auth.switch_org`: a client on the stored login goes on as
        the new session.
        """
        envelope = await self._client._request("POST", "/auth/switch-org", json=_switch(org))
        tokens = envelope.model(SessionTokens)
        await self._client._carry_stored_login(tokens)
        return tokens

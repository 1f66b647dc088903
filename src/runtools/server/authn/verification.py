"""Checking a credential on behalf of another service of the platform.

A service (a tool host, an agent runner, a proxy in front of either)
receives a credential from its own caller and asks us whether it is good:
``POST /v1/auth/verify`` (``verify``: the credential alone, judged as if
sent as ``Authorization: Bearer <credential>``) and the reverse-proxy check
(``verify_headers``: the caller's own ``X-API-Key`` and ``Authorization``
headers, as the proxy passed them on). ``CredentialCheck`` answers exactly
what the credential would get had it been sent to us itself: the steady path first
(``SteadyPath.vouch``: a cached verification, its use noted), then the
full path (``Authenticator.authenticate``), which decides and audits
every refusal. It holds no rule of its own about credentials: what ends a
key or a session lives there alone.

What the service asks for beyond a valid credential (``required``
scopes) is checked as a route's guard checks its scope: the first scope
the credential cannot use is named in the 403, and the denial is audited
in the credential's organization.

A refusal of the checked credential is a ``CredentialRefused``: the same
status, code and message as its own refusal, with the header
``X-Runtools-Refused: credential``, so the asking service can tell it
from a refusal of its own service credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runtools.server.authn.authenticator import Authenticator, ContextSource
from runtools.server.authn.steady import RawHeaders, SteadyPath
from runtools.server.domain.audit import AuditRecord
from runtools.server.domain.errors import CredentialRefused, Forbidden, Unauthorized
from runtools.server.domain.principal import Principal
from runtools.server.store.repositories.audit import AuditWriter

#: Longest credential worth looking at: every real one is far shorter.
MAX_CREDENTIAL_LENGTH = 4096


class CredentialCheck:
    def __init__(
        self, *, steady_path: SteadyPath, authenticator: Authenticator, audit: AuditWriter
    ) -> None:
        self._steady_path = steady_path
        self._authenticator = authenticator
        self._audit = audit

    async def verify(
        self,
        credential: str,
        context: ContextSource,
        *,
        required: Sequence[str] = (),
        service_id: str,
        route: str,
    ) -> Principal:
        """The principal ``credential`` stands for, if it may use every ``required`` scope.

        Raises ``CredentialRefused`` (401 or 403) otherwise. ``service_id``
        (the asking credential) and ``route`` go into the audit of a denial.
        """
        raw = None
        if credential.isascii() and credential.isprintable():
            raw = [(b"authorization", b"Bearer " + credential.encode("ascii"))]
        return await self.verify_headers(
            raw,
            {"authorization": f"Bearer {credential}"},
            context,
            required=required,
            service_id=service_id,
            route=route,
        )

    async def verify_headers(
        self,
        raw: RawHeaders | None,
        headers: Mapping[str, str],
        context: ContextSource,
        *,
        required: Sequence[str] = (),
        service_id: str,
        route: str,
    ) -> Principal:
        """``verify`` for a credential as a request carried it: its credential headers
        raw (for the steady path; None: leave it to the full path) and decoded."""
        try:
            principal = await self._principal(raw, headers, context)
        except (Unauthorized, Forbidden) as exc:  # a key sent from a browser is a 403
            raise CredentialRefused(exc) from None
        missing = next((scope for scope in required if not principal.allows(scope)), None)
        if missing is not None:
            self._audit.enqueue(
                AuditRecord(
                    action="authz.denied",
                    outcome="failure",
                    reason=f"requires scope {missing}",
                    org_id=principal.org_id,
                    actor_type=principal.credential_type,
                    actor_id=principal.credential_id,
                    context=context(),
                    details={"route": route, "checkedBy": service_id},
                )
            )
            raise CredentialRefused(Forbidden(f"This call requires scope {missing}"))
        return principal

    async def _principal(
        self, raw: RawHeaders | None, headers: Mapping[str, str], context: ContextSource
    ) -> Principal:
        if raw is not None:
            principal = self._steady_path.vouch(raw)
            if principal is not None:
                return principal
        # Anything the steady path does not vouch for: the full path decides, and audits.
        return await self._authenticator.authenticate(headers, context)

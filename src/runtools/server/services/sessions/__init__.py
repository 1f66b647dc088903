"""Sessions: one person signed in to one organization from one client.

A session holds a chain of single-use refresh tokens; its access tokens are
short-lived JWTs naming it, and sessions are checked on every cache fill, so
a revoked session's access tokens fail on the next request rather than when
they expire. One concept a module:

- ``sign_in``: a password (or a device sign-in approved elsewhere) in, a
  session out; sign-up; the sign-in throttles.
- ``refresh``: the refresh-token chain, its grace for racing twins and its
  reuse detection.
- ``management``: a person's own sessions: list, revoke, switch
  organization, change password.
- ``issuing``: what they share to make a session and its tokens.
- ``ending``: what they share to end one and tell every node.
- ``web``: a browser's hold on a session (the dashboard's signed cookie
  reference, CSRF tokens, re-authentication, one-time flashes).

Verifying an access token on a request is authentication's
(``runtools.server.authn``); queries are the store's
(``store.repositories.sessions``, ``organizations``). Nothing here imports
SQLAlchemy but for type annotations.
"""

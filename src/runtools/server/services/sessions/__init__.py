"""Sessions: signing in, the refresh-token chain, and managing one's sessions.

Verifying an access token on a request is authentication's
(``runtools.server.authn``); this package issues and ends sessions.
"""

"""Authentication: request credentials in, a ``Principal`` out, or one 401.

The full path (``authenticator``) verifies API keys, our access tokens
(``signing``) and an external issuer's (``external``); the cached steady
path (``steady``) answers most requests from what the full path verified
(``cache``); ``usage`` notes when keys were last used. Beside ``services``:
neither imports the other. What authorization a route requires is the
API's (``api.guards``); what a principal may do is the domain's.
"""

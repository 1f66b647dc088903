"""Authentication and authorization: key format, scopes, principals, guards.

Pure functions live here (``keys``, ``scopes``); the request-time pieces
(``authenticator``, ``cache``) depend on services, never on routers.
"""

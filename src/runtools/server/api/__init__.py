"""HTTP: routers translate between the wire and service calls, nothing more.

Routers never touch SQL or the store; every route declares its guard.
"""

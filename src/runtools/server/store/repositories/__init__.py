"""Repositories: every query the services and authentication make, one module per concept.

Each function takes the caller's ``Session`` (the unit of work is the
caller's) and returns models or plain records; none commits on its own
unless its docstring says so. Nothing here knows about HTTP or who may do
what: that is the services'.
"""

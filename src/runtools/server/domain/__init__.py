"""The domain's vocabulary: pure values and rules, the bottom layer.

Key format, scopes, roles, the principal, opaque token formats, durations,
audit records, credential events, ids, the clock, a page of a listing and
the exception tree. Nothing here does I/O or imports another part of the server: every other
layer may import this one.
"""

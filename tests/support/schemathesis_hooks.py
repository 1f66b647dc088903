"""Schemathesis hooks for ``scripts/fuzz-api``: how to put the API's binary bodies on the wire.

An archive upload (``PUT /v1/sandboxes/{id}/files/archive``) is a tar or gzip body;
schemathesis generates it as it does an ``application/octet-stream`` one.
"""

import schemathesis

schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
schemathesis.serializer.alias("application/gzip", "application/octet-stream")

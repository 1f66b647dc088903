"""Prometheus metrics, one registry per app (never the process-global default).

Request counts and latency by route template (never the raw path: bounded
labels, no ids in metrics), authentication failures by reason, denials,
rate-limit refusals, credential events, and the verification cache's hits
and misses (the hit ratio is ``hits / (hits + misses)``). Cache and event
link figures are read at scrape time, so they cost the request path nothing.

With ``runtools serve --workers N`` the workers write their counts and
latencies to files in a directory of their own (``PROMETHEUS_MULTIPROC_DIR``,
set up by ``serve``) and a scrape answered by any worker sums them all: the
node's totals. The cache and event-link figures stay those of the worker
that answers (they describe one process's cache).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import Scope

__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROCESS_DIR", "Metrics"]

#: Where worker processes share their metrics (prometheus_client's own switch).
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _LiveFigures(Collector):
    def __init__(
        self,
        cache_counts: Callable[[], tuple[int, int, int]],
        event_link_up: Callable[[], bool],
    ) -> None:
        self._cache_counts = cache_counts
        self._event_link_up = event_link_up

    def collect(self) -> Iterable[Metric]:
        hits, misses, size = self._cache_counts()
        lookups = CounterMetricFamily(
            "runtools_auth_cache_lookups", "Verification cache lookups", labels=["result"]
        )
        lookups.add_metric(["hit"], hits)
        lookups.add_metric(["miss"], misses)
        yield lookups
        yield GaugeMetricFamily(
            "runtools_auth_cache_entries", "Verifications held in the cache", value=size
        )
        yield GaugeMetricFamily(
            "runtools_event_link_up",
            "1 while this node receives revocation events from other nodes",
            value=1 if self._event_link_up() else 0,
        )


class Metrics:
    def __init__(
        self,
        *,
        cache_counts: Callable[[], tuple[int, int, int]],
        event_link_up: Callable[[], bool],
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "runtools_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "runtools_request_duration_seconds",
            "Time from request to response, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "runtools_auth_failures",
            "Refused credentials by true reason (callers all see the same 401)",
            ["reason"],
            registry=self.registry,
        )
        self.denials = Counter(
            "runtools_authz_denials",
            "Valid credentials refused for a missing scope or role",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "runtools_rate_limited",
            "Requests refused with 429, by what was limited (credential or address)",
            ["limited"],
            registry=self.registry,
        )
        self.credential_events = Counter(
            "runtools_credential_events",
            "Credential events applied to this node's cache, by kind",
            ["kind"],
            registry=self.registry,
        )
        self._live = _LiveFigures(cache_counts, event_link_up)
        self.registry.register(self._live)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_response(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "<unmatched>"
        series = (route, scope.get("method", ""), status)
        children = self._children.get(series)
        if children is None:  # labels() takes a lock and builds a tuple: once per series
            children = (
                self.requests.labels(route, series[1], str(status)),
                self.latency.labels(route),
            )
            self._children[series] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        shared = os.environ.get(MULTIPROCESS_DIR)
        if not shared:
            return generate_latest(self.registry)
        # Several workers: every worker's counts, summed, and this worker's live figures.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]  # untyped upstream
        registry.register(self._live)
        return generate_latest(registry)

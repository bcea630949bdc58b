"""Prometheus metrics per tenant, kept in their own registry.

Metric labels name tenants, so the registry is served on a separate,
loopback-only listener and never on the public port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "bulkhead_requests_total",
            "Requests by tenant, surface and status.",
            ["tenant", "surface", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bulkhead_request_seconds",
            "Request latency by tenant and surface.",
            ["tenant", "surface"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "bulkhead_tokens_total",
            "Tokens by tenant, model and kind (prompt/completion).",
            ["tenant", "model", "kind"],
            registry=self.registry,
        )
        self.denials = Counter(
            "bulkhead_denials_total",
            "Requests refused before reaching a model, by reason.",
            ["tenant", "reason"],
            registry=self.registry,
        )

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

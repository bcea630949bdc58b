"""Prometheus metrics per tenant, kept in their own registry.

Metric labels name tenants, so the registry is served on a separate listener,
never on the public port: on loopback by default, or on another address (a
pod's, for a scraper in the cluster) only behind a bearer token
(`BULKHEAD_METRICS_TOKEN_FILE`), compared in constant time.
"""

from __future__ import annotations

import contextlib
import hmac
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from bulkhead.audit import WriterState
from bulkhead.observe.collectors import LabelledGauges, WorkerFacts, Workers

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# The codes a 5xx answer's error may carry (`bulkhead.errors`); anything else is "other",
# so the `code` label stays a short, fixed list whatever an exception is called.
ERROR_CODES = frozenset(
    {
        "audit_unavailable",
        "kms_unavailable",
        "service_unavailable",
        "upstream_error",
        "upstream_timeout",
    }
)


class Metrics:
    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._tokens: dict[tuple[str, str], tuple[Any, Any]] = {}
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
        self.alerts = Counter(
            "bulkhead_alerts_total",
            "Abuse and anomaly alerts sent (after de-duplication), by kind.",
            ["tenant", "kind"],
            registry=self.registry,
        )
        self.errors = Counter(
            "bulkhead_errors_total",
            "Answers with a 5xx status, by the error's code (audit_unavailable, ...).",
            ["tenant", "surface", "code"],
            registry=self.registry,
        )
        self.break_glass = Counter(
            "bulkhead_break_glass_total",
            "Break-glass grants taken (one platform admin acting without a second).",
            registry=self.registry,
        )

    def record(
        self,
        tenant: str,
        surface: str,
        status: int,
        seconds: float,
        denial: str | None,
        error: str | None = None,
    ) -> None:
        """One finished request; label children are cached, as `labels()` is slow.

        `error` is the reason of a 5xx answer (its error code first): only that
        path, rare, pays for the `bulkhead_errors_total` child.
        """
        key = (tenant, surface, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(tenant, surface, str(status)),
                self.latency.labels(tenant, surface),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if denial is not None:
            self.denials.labels(tenant, denial).inc()
        if status >= 500:
            self.error(tenant, surface, error)

    def error(self, tenant: str, surface: str, reason: str | None) -> None:
        """One 5xx answer, by its error code (the reason's first part), else "other"."""
        code = (reason or "").partition(":")[0]
        self.errors.labels(tenant, surface, code if code in ERROR_CODES else "other").inc()

    def record_tokens(self, tenant: str, model: str, prompt: int, completion: int) -> None:
        key = (tenant, model)
        children = self._tokens.get(key)
        if children is None:
            children = (
                self.tokens.labels(tenant, model, "prompt"),
                self.tokens.labels(tenant, model, "completion"),
            )
            self._tokens[key] = children
        children[0].inc(prompt)
        children[1].inc(completion)

    def watch_audit(self, state: Callable[[], WriterState]) -> None:
        """Gauges of the audit writer, read from `state` at each scrape."""
        gauges = (
            (
                "bulkhead_audit_writer_up",
                "1 while audit events are written, 0 while not.",
                lambda s: float(s.healthy),
            ),
            (
                "bulkhead_audit_backlog_events",
                "Audit events emitted but not yet durable.",
                lambda s: float(s.backlog),
            ),
            (
                "bulkhead_audit_failing_since_timestamp_seconds",
                "When the audit writer began failing (0: it is not).",
                lambda s: s.failing_since or 0.0,
            ),
            (
                "bulkhead_audit_last_commit_timestamp_seconds",
                "When audit events were last committed.",
                lambda s: s.last_commit or 0.0,
            ),
            (
                "bulkhead_audit_dropped_events",
                "Audit events dropped because the backlog was full.",
                lambda s: float(s.dropped),
            ),
        )
        for name, doc, read in gauges:
            gauge = Gauge(name, doc, registry=self.registry)
            gauge.set_function(_reader(state, read))

    def watch_key_ages(self, ages: Callable[[], Mapping[str, float]]) -> None:
        """``bulkhead_key_oldest_age_seconds{kind}``, read from `ages` at each scrape.

        Per kind of key (tenant-kek, platform-kek, audit-signing, ca, cache-salt,
        session-key), how old the oldest key that still does new work is: an
        alert on it catches a rotation that stopped happening.
        """
        self.registry.register(
            LabelledGauges(
                "bulkhead_key_oldest_age_seconds",
                "Age of the oldest key of each kind that still does new work (rotation overdue?).",
                "kind",
                ages,
            )
        )

    def watch_key_rotations(self, due: Callable[[], Mapping[str, float]]) -> None:
        """``bulkhead_key_rotation_due_timestamp_seconds{kind}``: per kind of platform key,
        when the first key still doing new work was due to be rotated (Unix time); an
        alert on ``time() - it`` catches a key used past its rotation period."""
        self.registry.register(
            LabelledGauges(
                "bulkhead_key_rotation_due_timestamp_seconds",
                "When the first in-use key of each kind was due for rotation (Unix time).",
                "kind",
                due,
            )
        )

    def watch_api_key_ages(self, ages: Callable[[], Mapping[str, float]]) -> None:
        """``bulkhead_api_key_oldest_age_seconds{tenant}``: per tenant (its name, or
        ``_platform`` for platform principals), the age of its oldest usable API key.
        No key id: the alert names the tenant, whose admins list their keys."""
        self.registry.register(
            LabelledGauges(
                "bulkhead_api_key_oldest_age_seconds",
                "Age of each tenant's oldest usable API key (rotation overdue?).",
                "tenant",
                ages,
            )
        )

    def watch_limiter(self, store: str, up: Callable[[], bool]) -> None:
        """``bulkhead_limiter_up{store}``: whether the rate limiter's store answers now
        (Redis is pinged at each scrape; the in-process limiter is always up)."""
        gauge = Gauge(
            "bulkhead_limiter_up",
            "1 while the rate limiter's store answers, 0 while calls are refused (or fail open).",
            ["store"],
            registry=self.registry,
        )
        gauge.labels(store).set_function(lambda: float(up()))

    def watch_workers(self, facts: Callable[[], Iterable[WorkerFacts]]) -> None:
        """Restarts, readiness and failure of each local model worker, at each scrape."""
        self.registry.register(Workers(facts))

    def watch_catalog(self, unconfirmed: Callable[[], float], pushed: Callable[[], bool]) -> None:
        """How long the catalog has gone unconfirmed, and whether the push reaches it.

        An alert on ``bulkhead_catalog_unconfirmed_seconds`` nearing
        ``BULKHEAD_CATALOG_MAX_STALE_MS`` warns before the replica fails closed.
        """
        age = Gauge(
            "bulkhead_catalog_unconfirmed_seconds",
            "Seconds since the catalog was last confirmed to be the newest.",
            registry=self.registry,
        )
        age.set_function(unconfirmed)
        push = Gauge(
            "bulkhead_catalog_push_healthy",
            "1 while PostgreSQL's NOTIFY reaches this replica's catalog, else 0 (polling).",
            registry=self.registry,
        )
        push.set_function(lambda: float(pushed()))

    def serve(self, host: str, port: int, token: str | None = None) -> WSGIServer:
        """Serve the registry on a daemon thread; with a token, only to a caller sending it."""
        app = make_wsgi_app(self.registry)
        if token is not None:
            app = _bearer_only(app, token)

        class Server(_WakingServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        server = make_server(host, port, app, Server, handler_class=_QuietHandler)
        server.start()
        return server


class _WakingServer(ThreadingWSGIServer):
    """Waits for a connection with no timer: `serve_forever` wakes twice a second to see
    whether it should stop, in a process that is otherwise idle.  `shutdown` wakes it with
    a connection of its own instead."""

    timeout = None  # `handle_request` blocks until a connection comes
    _stopping = False
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping:
            self.handle_request()

    def shutdown(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            host, port = self.server_address[:2]
            socket.create_connection((str(host), int(port)), timeout=1).close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: a scraper's calls are not worth a line each."""


def _bearer_only(app: Any, token: str) -> Any:
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        given = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            headers = [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")]
            start_response("401 Unauthorized", headers)
            return [b"metrics need the scrape token\n"]
        return app(environ, start_response)

    return guarded


def _reader(
    state: Callable[[], WriterState], read: Callable[[WriterState], float]
) -> Callable[[], float]:
    return lambda: read(state())

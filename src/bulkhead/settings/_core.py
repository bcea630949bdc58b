"""The settings every process needs first: where the store is, and what it listens on.

The first group of the settings table (`bulkhead.settings`); each group extends the one
before it, so the table stays in the order `load` reads it (a row may use those before it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bulkhead.settings import _checks as check
from bulkhead.settings import _help as h
from bulkhead.settings._checks import DEFAULT_DATA_DIR
from bulkhead.settings._table import setting


@dataclass(frozen=True, slots=True)
class Core:
    """The data directory, the database, TLS, the listeners, metrics and traces."""

    data_dir: Path = setting(
        "BULKHEAD_DATA_DIR",
        help="SQLite store, audit log, CLI profile",
        flag="--data-dir",
        shown=f"`./{DEFAULT_DATA_DIR}`",
        parse=check.data_dir,
    )
    database_url: str = setting(
        "BULKHEAD_DATABASE_URL",
        help="`postgresql://user:pass@host/db` for production",
        shown="SQLite (WAL) in the data dir",
        parse=check.database_url,
        secret=True,
    )
    # TLS on the public listener (both or neither).
    tls_cert: Path | None = setting(
        "BULKHEAD_TLS_CERT",
        None,
        help="TLS 1.2+ with HSTS on the public port: PEM certificate chain",
        flag="--tls-cert",
        shown="off",
        parse=check.tls_cert,
    )
    tls_key: Path | None = setting(
        "BULKHEAD_TLS_KEY",
        None,
        help="PEM private key of the TLS certificate (both or neither)",
        flag="--tls-key",
        shown="off",
        parse=check.tls_key,
    )
    # The owner's URL, for migrations only; the gateway itself connects as a
    # plain role so that PostgreSQL's row-level security binds it.
    database_admin_url: str | None = setting(
        "BULKHEAD_DATABASE_ADMIN_URL",
        None,
        help="PostgreSQL owner URL, used for migrations only",
        parse=check.admin_url,
        secret=True,
    )
    host: str = setting("BULKHEAD_HOST", "127.0.0.1", help="public API address", flag="--host")
    port: int = setting(
        "BULKHEAD_PORT", 8080, lo=0, hi=65535, help="public API port", flag="--port"
    )
    metrics_host: str = setting(
        "BULKHEAD_METRICS_HOST",
        "127.0.0.1",
        help="metrics address; off loopback only with BULKHEAD_METRICS_TOKEN_FILE",
        parse=check.metrics_host,
    )
    metrics_token_file: Path | None = setting(
        "BULKHEAD_METRICS_TOKEN_FILE",
        None,
        help="a file holding the bearer token a scraper must send (needed off loopback)",
        shown="none",
        parse=check.metrics_token_file,
    )
    metrics_port: int = setting(
        "BULKHEAD_METRICS_PORT",
        9464,
        lo=0,
        hi=65535,
        help="metrics port; `0` turns it off",
        flag="--metrics-port",
    )
    # Traces (`observe.tracing`) for the operator's collector; unset: none, at no cost.
    otlp_endpoint: str | None = setting(
        "BULKHEAD_OTLP_ENDPOINT", None, help=h.OTLP_URL, parse=check.otlp_url
    )
    otlp_headers: tuple[tuple[str, str], ...] = setting(
        "BULKHEAD_OTLP_HEADERS", (), help=h.OTLP_HEADERS, parse=check.otlp_headers, secret=True
    )
    otlp_service_name: str = setting(
        "BULKHEAD_OTLP_SERVICE_NAME", "bulkhead", help="`service.name` in traces"
    )
    trace_sample_ratio: float = setting(
        "BULKHEAD_TRACE_SAMPLE_RATIO", 1.0, lo=0, hi=1, help=h.SAMPLE, parse=check.ratio
    )

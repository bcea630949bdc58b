"""The settings of how a replica runs: the catalog's freshness, maintenance, shutdown and the
HTTP server (a group of `bulkhead.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkhead.settings import _checks as check
from bulkhead.settings import _help as h
from bulkhead.settings._table import setting
from bulkhead.settings._workloads import Workloads


@dataclass(frozen=True, slots=True)
class Operations(Workloads):
    """The catalog, maintenance, retention, shutdown, the HTTP server and the demo."""

    upstream_connect_timeout_s: float = setting(None, 5.0, help="upstream connect timeout")
    catalog_poll_s: float = setting(None, 1.0, help="how often the catalog checks for changes")
    # While PostgreSQL's NOTIFY reaches this replica (`store.listen`), polling is the fallback.
    catalog_push_poll_s: float = setting(
        None, 5.0, help="how often the catalog checks for changes while the push works"
    )
    catalog_max_stale_s: float = setting(
        "BULKHEAD_CATALOG_MAX_STALE_MS",
        5.0,
        lo=0,
        hi=3_600_000,
        help="refuse requests (503) once the catalog could not be confirmed fresh for this "
        "long (ms; 0 = never)",
        shown="5000",
        parse=check.millis,
    )
    # Scheduled KEK rotation and retention purge; 0 turns the timer off.
    maintenance_interval_s: int = setting(
        "BULKHEAD_MAINTENANCE_INTERVAL_S",
        600,
        lo=0,
        hi=86_400,
        help="scheduled key rotations and retention purge; 0 = off",
    )
    # Durable usage (`store.usage`) older than this is deleted by the maintenance job.
    usage_retention_days: int = setting(
        "BULKHEAD_USAGE_RETENTION_DAYS",
        400,
        lo=1,
        hi=36_500,
        help="days of hourly usage kept (`/tenant/v1/usage`); older hours are deleted",
    )
    # SIGTERM: stop accepting, let in-flight calls and streams finish for this long, then
    # cancel what is left, flush the audit log and exit 0.
    shutdown_grace_s: int = setting(
        "BULKHEAD_SHUTDOWN_GRACE_S",
        30,
        lo=0,
        hi=3600,
        help=h.SHUTDOWN_GRACE,
    )
    # How admission counts prompts (limits/tokens.py): the same counts either way.
    token_counter: str = setting(
        "BULKHEAD_TOKEN_COUNTER", "tiktoken", help=h.COUNTER_ENGINE, choices=("tiktoken", "compact")
    )
    # The HTTP server of `bulkhead serve` and its limits (docs/operations.md, "HTTP server").
    http_server: str = setting(
        "BULKHEAD_HTTP_SERVER", "bulkhead", help=h.HTTP_SERVER, choices=("uvicorn", "bulkhead")
    )
    http_uvicorn_unbounded: bool = setting(
        "BULKHEAD_HTTP_UVICORN_UNBOUNDED", False, help=h.UVICORN, shown="`0`", parse=check.uvicorn
    )
    http_keep_alive_s: int = setting(
        "BULKHEAD_HTTP_KEEP_ALIVE_S", 5, lo=1, hi=300, help=h.KEEP_ALIVE
    )
    http_head_timeout_s: int = setting(
        "BULKHEAD_HTTP_HEAD_TIMEOUT_S", 10, lo=2, hi=120, help=h.HEAD_TIMEOUT
    )
    http_body_timeout_s: int = setting(
        "BULKHEAD_HTTP_BODY_TIMEOUT_S", 30, lo=2, hi=600, help=h.BODY_TIMEOUT
    )
    http_send_timeout_s: int = setting(
        "BULKHEAD_HTTP_SEND_TIMEOUT_S", 60, lo=2, hi=600, help=h.SEND_TIMEOUT
    )
    http_max_connections: int = setting(
        "BULKHEAD_HTTP_MAX_CONNECTIONS", 10_000, lo=16, hi=100_000, help=h.MAX_CONNECTIONS
    )
    start_workers: bool = setting(
        "BULKHEAD_START_WORKERS", True, help="start the local workers (`0` = no)", shown="`1`"
    )
    # The chat model `bulkhead init` registers and grants the demo tenant: the bundled
    # SmolLM2, or the random-weight test model that loads in well under a second.
    demo_chat_model: str = setting(
        "BULKHEAD_DEMO_CHAT_MODEL",
        "smollm2-135m",
        help="the demo tenant's chat model made by `bulkhead init`: `smollm2-135m` (bundled, "
        "real) or `demo-chat` (random weights, meaningless text: for tests)",
        choices=("smollm2-135m", "demo-chat"),
    )

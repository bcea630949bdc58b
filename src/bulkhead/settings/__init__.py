"""Configuration: command-line values, then environment variables, then embedded defaults.

`Settings` is the one table of settings: each field declares its environment
variable, default, range and help (`setting(...)`), and `load()`, the
README's configuration table (`python -m bulkhead.settings`, checked by
`tests/unit/test_settings_table.py`) and the defaults all come from it.
Settings are validated once at start-up; a bad one raises `ConfigError`
carrying a single line, naming the variable, that the CLI prints before
exiting with status 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bulkhead.settings import _checks as check
from bulkhead.settings import _help as h
from bulkhead.settings._checks import DEFAULT_DATA_DIR, KMS_BACKENDS
from bulkhead.settings._table import Setting, Source, markdown, read_rows, rows_of, setting

MiB = 1024 * 1024

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_URL", "KMS_BACKENDS", "SETTINGS", "Setting", "Settings"]
__all__ += ["Source", "load", "markdown_table"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, in the order `load` reads them (a later one may use an earlier one)."""

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
    max_body_bytes: int = setting(
        "BULKHEAD_MAX_BODY_BYTES",
        8 * MiB,
        lo=1024,
        hi=1 << 31,
        help="larger bodies get 413",
        shown="8 MiB",
    )
    max_file_bytes: int = setting(
        "BULKHEAD_MAX_FILE_BYTES",
        32 * MiB,
        lo=1024,
        hi=1 << 34,
        help="largest `/v1/files` upload",
        shown="32 MiB",
    )
    # Vector stores: the plaintext indexes one replica keeps loaded (least recently used go).
    vector_cache_mb: int = setting(
        "BULKHEAD_VECTOR_CACHE_MB", 512, lo=16, hi=1 << 20, help=h.VECTOR_CACHE
    )
    # Fine-tuning (`finetune.queue`): jobs this replica trains at once, all tenants together;
    # each tenant also has its own limit (`fine_tuning_concurrency`).  0 turns it off.
    fine_tuning_jobs: int = setting(
        "BULKHEAD_FINE_TUNING_JOBS",
        0,
        lo=0,
        hi=64,
        help="fine-tuning jobs this replica runs at once; 0 = off (`/v1/fine_tuning` answers 404)",
    )
    # The replicas share one queue in the database (`finetune.lease`): each heartbeats its
    # jobs, claims queued ones and sees cancels made elsewhere every poll.
    fine_tuning_poll_s: float = setting(
        "BULKHEAD_FINE_TUNING_POLL_MS",
        1.0,
        lo=10,
        hi=60_000,
        help="how often a replica renews its fine-tuning leases, claims queued jobs and sees "
        "cancels made through another replica (ms)",
        shown="1000",
        parse=check.millis,
    )
    fine_tuning_lease_s: float = setting(
        "BULKHEAD_FINE_TUNING_LEASE_MS",
        30.0,
        lo=500,
        hi=3_600_000,
        help="a running fine-tuning job whose replica stops renewing it for this long fails (ms)",
        shown="30000",
        parse=check.millis,
    )
    # Where the jobs train: this host's sandbox (`finetune.runner`) or, on Kubernetes, a Job
    # per job in the tenant's training namespace (`k8s.jobs.KubeRunner`, in-cluster only),
    # rendered with the cluster settings of `k8s_config` (the file `bulkhead k8s` reads).
    fine_tuning_runner: str = setting(
        "BULKHEAD_FINE_TUNING_RUNNER",
        "sandbox",
        help="where fine-tuning jobs run: `sandbox` (a sandboxed process on this host) or "
        "`kubernetes` (a Job per job, from inside the cluster; docs/kubernetes.md)",
        choices=("sandbox", "kubernetes"),
    )
    k8s_config: str | None = setting(
        "BULKHEAD_K8S_CONFIG",
        None,
        help="the cluster's settings (YAML or JSON, as `bulkhead k8s --config`) for the "
        "`kubernetes` fine-tuning runner",
        shown="none",
    )
    # A model import is one request, buffered in memory: platform admins only.
    max_model_bytes: int = setting(
        "BULKHEAD_MAX_MODEL_BYTES",
        4096 * MiB,
        lo=1024,
        hi=1 << 40,
        help="largest model import (one request, buffered in memory; platform admins only)",
        shown="4 GiB",
    )
    kms_master_key: str | None = setting(
        "BULKHEAD_KMS_MASTER_KEY",
        None,
        help="base64 256-bit master key for the local KMS",
        shown="`data_dir/kms/master.key` (0600)",
        secret=True,
    )
    kms_backend: str = setting(
        "BULKHEAD_KMS",
        "local",
        help="`local` or `pkcs11` (an HSM; then `BULKHEAD_PKCS11_MODULE`, `_TOKEN`, `_PIN`)",
        choices=KMS_BACKENDS,
        parse=check.kms_backend,
    )
    pkcs11_module: str | None = setting(
        "BULKHEAD_PKCS11_MODULE", None, help="path of the PKCS#11 library (`BULKHEAD_KMS=pkcs11`)"
    )
    pkcs11_token: str | None = setting(
        "BULKHEAD_PKCS11_TOKEN", None, help="label of the PKCS#11 token"
    )
    pkcs11_pin: str | None = setting(
        "BULKHEAD_PKCS11_PIN", None, help="user PIN of the PKCS#11 token", secret=True
    )
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
        "BULKHEAD_SHUTDOWN_GRACE_S", 30, lo=0, hi=3600, help=h.SHUTDOWN_GRACE
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
    audit_origin: str = setting(
        "BULKHEAD_AUDIT_ORIGIN",
        "bulkhead/audit",
        help="the audit log's origin line in its signed checkpoints",
        parse=check.origin,
    )
    audit_witness_url: str | None = setting(
        "BULKHEAD_AUDIT_WITNESS_URL", None, help=h.WITNESS, parse=check.http_url
    )
    trust_domain: str = setting(
        "BULKHEAD_TRUST_DOMAIN",
        "bulkhead.local",
        help="SPIFFE trust domain of the internal CA",
        parse=check.trust_domain,
    )
    # mTLS between the gateway and its local workers (with the bearer token kept).
    worker_mtls: bool = setting(
        "BULKHEAD_WORKER_MTLS", True, help="mTLS between gateway and local workers", shown="`1`"
    )
    # Lifetime of the SVIDs of the gateway and its workers; each renews at half of it.
    svid_lifetime_s: int = setting(
        "BULKHEAD_SVID_LIFETIME_S",
        3600,
        lo=4,
        hi=30 * 86_400,
        help="workload certificate lifetime (rotated at half)",
    )
    # Break-glass alerts are POSTed here as JSON (best effort); it may carry a token.
    alert_webhook_url: str | None = setting(
        "BULKHEAD_ALERT_WEBHOOK_URL",
        None,
        help="break-glass, anomaly, audit-writer and key-rotation alerts are POSTed here",
        parse=check.http_url,
        secret=True,
    )
    # Rate limits and shared capacity across replicas (Redis), or kept in this process (unset).
    redis_url: str | None = setting(
        "BULKHEAD_REDIS_URL",
        None,
        help="rate limits and shared models' capacity, shared by every replica "
        "(`redis://`, `rediss://`, `unix://`)",
        shown="none (in process)",
        parse=check.redis_url,
        secret=True,
    )
    # Calls in flight to one shared deployment, unless it sets `max_in_flight`, and
    # how long a call may wait in its tenant's queue for a slot before a 429.
    shared_capacity: int = setting(
        "BULKHEAD_SHARED_CAPACITY",
        64,
        lo=1,
        hi=100_000,
        help="calls in flight to one shared deployment, unless it sets `max_in_flight`",
    )
    queue_wait_s: float = setting(
        "BULKHEAD_QUEUE_WAIT_MS",
        10.0,
        lo=0,
        hi=600_000,
        help="how long a call may wait (ms) in its tenant's queue for a shared slot before a 429",
        shown="10000",
        parse=check.millis,
    )
    # With Redis: how long the concurrency slots and shared-capacity slots of a replica
    # outlive it (renewed every third of it while its calls run).
    slot_lease_s: int = setting(
        "BULKHEAD_SLOT_LEASE_S",
        10,
        lo=2,
        hi=3600,
        help="with Redis: seconds a dead replica's concurrency and shared-capacity slots "
        "stay taken (renewed while calls run)",
    )
    # Worker sandbox: "on" (what the host allows, the rest reported), "off" or "require";
    # the uids workers get (one each), and a memory limit for every tier (0: the tier's).
    worker_sandbox: str = setting(
        "BULKHEAD_WORKER_SANDBOX",
        "on",
        help="worker sandbox: `on` (what the host allows, the rest reported), `off`, `require`",
        choices=("on", "off", "require"),
    )
    worker_uid_base: int = setting(
        "BULKHEAD_WORKER_UID_BASE",
        910_000,
        lo=1000,
        hi=2**31 - 2**20,
        help="first uid given to workers (one each)",
    )
    worker_uid_count: int = setting(
        "BULKHEAD_WORKER_UID_COUNT", 1000, lo=1, hi=2**20, help="how many uids workers may get"
    )
    worker_memory_mb: int = setting(
        "BULKHEAD_WORKER_MEMORY_MB", 0, lo=0, hi=1 << 24, help=h.WORKER_MEMORY
    )
    # Sign-in (/auth/v1, anonymous): attempts per minute per client address and in
    # all (shared through Redis when it is set), and the threads that check passwords
    # and how many more attempts may wait for them before the rest get a 429.
    signin_client_rpm: int = setting(
        "BULKHEAD_SIGNIN_CLIENT_RPM",
        30,
        lo=1,
        hi=1_000_000,
        help="sign-in attempts a minute per client address (IPv6: per /64; the socket peer, "
        "so behind a proxy raise it and limit at the proxy); shared through Redis when "
        "`BULKHEAD_REDIS_URL` is set",
    )
    signin_rpm: int = setting(
        "BULKHEAD_SIGNIN_RPM", 600, lo=1, hi=1_000_000, help="sign-in attempts a minute in all"
    )
    signin_workers: int = setting(
        "BULKHEAD_SIGNIN_WORKERS", 2, lo=1, hi=64, help="threads checking passwords"
    )
    signin_queue: int = setting(
        "BULKHEAD_SIGNIN_QUEUE",
        16,
        lo=0,
        hi=10_000,
        help="sign-in attempts that may wait for those threads (more get 429 at once)",
    )
    # CIDRs the platform's own upstreams may reach beyond public, loopback, private and
    # CGNAT addresses (link-local, metadata…): none unless the operator names them.
    upstream_allow_cidrs: tuple[str, ...] = setting(
        "BULKHEAD_UPSTREAM_ALLOW_CIDRS",
        (),
        help="comma-separated CIDRs the platform's own upstreams may reach beyond public, "
        "loopback, private and CGNAT (e.g. a link-local range)",
        shown="none",
        parse=check.cidrs,
    )
    idp_allow_cidrs: tuple[str, ...] = setting(
        "BULKHEAD_IDP_ALLOW_CIDRS", (), shown="none", parse=check.cidrs, help=h.IDP_CIDRS
    )
    console_origin: str | None = setting(
        "BULKHEAD_CONSOLE_ORIGIN", None, help=h.CONSOLE_ORIGIN, parse=check.web_origin
    )
    # Scheduled rotation of the platform's own keys (days; 0 turns one off), run by the
    # maintenance loop.  A new CA version issues only `ca_activation_s` after it is made:
    # the time every peer has to take the new trust bundle.  A CA certificate lasts 5 years;
    # a version must outlast its activation, its period, the next version's activation and
    # its last leaf (30 days), so the period is at most 1,700 days.
    audit_key_rotation_days: int = setting(
        "BULKHEAD_AUDIT_KEY_ROTATION_DAYS",
        90,
        lo=0,
        hi=3650,
        help="rotation of the audit log's signing key; 0 = off",
    )
    platform_kek_rotation_days: int = setting(
        "BULKHEAD_PLATFORM_KEK_ROTATION_DAYS",
        90,
        lo=0,
        hi=3650,
        help="rotation of the `_platform` KEK; 0 = off",
    )
    ca_rotation_days: int = setting(
        "BULKHEAD_CA_ROTATION_DAYS",
        365,
        lo=0,
        hi=1700,
        help="rotation of the internal CA (at most 1,700 days, so a version outlives its "
        "last leaf within its 5-year certificate); 0 = off",
    )
    ca_activation_s: int = setting(
        "BULKHEAD_CA_ACTIVATION_S",
        86_400,
        lo=5,
        hi=30 * 86_400,
        help="how long a new CA is only trusted before it issues (every peer takes the new "
        "bundle meanwhile; at most 30 days)",
    )
    cache_salt_rotation_days: int = setting(
        "BULKHEAD_CACHE_SALT_ROTATION_DAYS",
        90,
        lo=0,
        hi=3650,
        help="rotation of the secret behind tenants' vLLM cache salts; 0 = off",
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def __repr__(self) -> str:
        # The database URL may carry a password: show only its scheme and host.
        parts = urlsplit(self.database_url)
        database = f"{parts.scheme}://{parts.hostname or ''}"
        return f"Settings(data_dir={str(self.data_dir)!r}, database={database})"


SETTINGS: tuple[Setting, ...] = rows_of(Settings)
"""The table, one row per `Settings` field, in the order `load` reads them."""

DEFAULT_URL = "http://{}:{}".format(*(r.default for r in SETTINGS if r.name in ("host", "port")))


def load(
    *,
    data_dir: str | Path | None = None,
    host: str | None = None,
    port: int | None = None,
    metrics_port: int | None = None,
    env: Mapping[str, str] | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
) -> Settings:
    """Build validated settings; explicit arguments win over the environment."""
    names = ("data_dir", "host", "port", "metrics_port", "tls_cert", "tls_key")
    given = dict(zip(names, (data_dir, host, port, metrics_port, tls_cert, tls_key), strict=True))
    return Settings(**read_rows(SETTINGS, os.environ if env is None else env, given))


def markdown_table() -> str:
    """The README's configuration table, generated from `SETTINGS`."""
    return markdown(SETTINGS)

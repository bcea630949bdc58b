"""Configuration: command-line values, then environment variables, then embedded defaults.

Settings are validated once at start-up; a bad one raises `ConfigError`
carrying a single line that the CLI prints before exiting with status 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bulkhead.errors import ConfigError

DEFAULT_DATA_DIR = ".bulkhead"
DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    max_body_bytes: int = 8 * 1024 * 1024
    max_file_bytes: int = 32 * 1024 * 1024
    # A model import is one request, buffered in memory: platform admins only.
    max_model_bytes: int = 4 * 1024 * 1024 * 1024
    kms_master_key: str | None = field(default=None, repr=False)
    kms_backend: str = "local"
    pkcs11_module: str | None = None
    pkcs11_token: str | None = None
    pkcs11_pin: str | None = field(default=None, repr=False)
    upstream_connect_timeout_s: float = 5.0
    catalog_poll_s: float = 1.0
    # Scheduled KEK rotation and retention purge; 0 turns the timer off.
    maintenance_interval_s: int = 600
    start_workers: bool = True
    audit_origin: str = "bulkhead/audit"
    audit_witness_url: str | None = None
    # Break-glass alerts are POSTed here as JSON (best effort); it may carry a token.
    alert_webhook_url: str | None = field(default=None, repr=False)
    # TLS on the public listener (both or neither), and the internal CA's trust domain.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trust_domain: str = "bulkhead.local"
    # mTLS between the gateway and its local workers (with the bearer token kept).
    worker_mtls: bool = True
    # Lifetime of the SVIDs of the gateway and its workers; each renews at half of it.
    svid_lifetime_s: int = 3600
    # The owner's URL, for migrations only; the gateway itself connects as a
    # plain role so that PostgreSQL's row-level security binds it.
    database_admin_url: str | None = field(default=None, repr=False)
    # Rate limits shared by every replica (Redis), or kept in this process (unset).
    redis_url: str | None = field(default=None, repr=False)
    # Calls in flight to one shared deployment, unless it sets `max_in_flight`, and
    # how long a call may wait in its tenant's queue for a slot before a 429.
    shared_capacity: int = 64
    queue_wait_s: float = 10.0
    # Worker sandbox: "on" (what the host allows, the rest reported), "off" or "require";
    # the uids workers get (one each), and a memory limit for every tier (0: the tier's).
    worker_sandbox: str = "on"
    worker_uid_base: int = 910_000
    worker_uid_count: int = 1000
    worker_memory_mb: int = 0
    # Sign-in (/auth/v1, anonymous): attempts per minute per client address and in
    # all (shared through Redis when it is set), and the threads that check passwords
    # and how many more attempts may wait for them before the rest get a 429.
    signin_client_rpm: int = 30
    signin_rpm: int = 600
    signin_workers: int = 2
    signin_queue: int = 16
    # CIDRs the platform's own upstreams may reach beyond public, loopback, private and
    # CGNAT addresses (link-local, metadata…): none unless the operator names them.
    upstream_allow_cidrs: tuple[str, ...] = ()
    # Scheduled rotation of the platform's own keys (days; 0 turns one off), run by
    # the maintenance loop.  A new CA version issues only `ca_activation_s` after it
    # is made: the time every peer has to take the new trust bundle.  A CA
    # certificate lasts 5 years; a version must outlast its activation, its
    # period, the next version's activation and its last leaf (30 days), so the
    # period is at most 1,700 days.
    audit_key_rotation_days: int = 90
    platform_kek_rotation_days: int = 90
    ca_rotation_days: int = 365
    ca_activation_s: int = 86_400
    cache_salt_rotation_days: int = 90

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def __repr__(self) -> str:
        # The database URL may carry a password: show only its scheme and host.
        parts = urlsplit(self.database_url)
        database = f"{parts.scheme}://{parts.hostname or ''}"
        return f"Settings(data_dir={str(self.data_dir)!r}, database={database})"


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _sql_url(name: str, url: str) -> str:
    try:
        parts = urlsplit(url)
        scheme, _port = parts.scheme, parts.port
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL (check its host and port)") from None
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if scheme == "sqlite":
        return url
    raise ConfigError(f"{name} must start with postgresql:// or sqlite://, got scheme {scheme!r}")


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    url = env.get("BULKHEAD_DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{data_dir / 'bulkhead.db'}"
    return _sql_url("BULKHEAD_DATABASE_URL", url)


def _admin_url(env: Mapping[str, str], database_url: str) -> str | None:
    url = env.get("BULKHEAD_DATABASE_ADMIN_URL", "").strip()
    if not url:
        return None
    url = _sql_url("BULKHEAD_DATABASE_ADMIN_URL", url)
    if not (url.startswith("postgresql") and database_url.startswith("postgresql")):
        raise ConfigError(
            "BULKHEAD_DATABASE_ADMIN_URL is for PostgreSQL: both it and BULKHEAD_DATABASE_URL "
            "must start with postgresql://"
        )
    return url


def _origin(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._/-]{1,128}", value):
        raise ConfigError("BULKHEAD_AUDIT_ORIGIN may hold only letters, digits and . _ / -")
    return value


def _witness(url: str | None) -> str | None:
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError("BULKHEAD_AUDIT_WITNESS_URL must be an http(s) URL")
    return url


def _alert_webhook(url: str | None) -> str | None:
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError("BULKHEAD_ALERT_WEBHOOK_URL must be an http(s) URL")
    return url


KMS_BACKENDS = ("local", "pkcs11")


def _kms_backend(env: Mapping[str, str]) -> str:
    """BULKHEAD_KMS; "pkcs11" needs its module, token and PIN (the PIN is never echoed)."""
    backend = (env.get("BULKHEAD_KMS") or "local").strip().lower()
    if backend not in KMS_BACKENDS:
        raise ConfigError(f"BULKHEAD_KMS must be 'local' or 'pkcs11', got {backend!r}")
    if backend == "pkcs11":
        names = ("BULKHEAD_PKCS11_MODULE", "BULKHEAD_PKCS11_TOKEN", "BULKHEAD_PKCS11_PIN")
        missing = [name for name in names if not env.get(name)]
        if missing:
            raise ConfigError(f"BULKHEAD_KMS=pkcs11 needs {', '.join(missing)} to be set")
    return backend


def _tls_files(
    env: Mapping[str, str], cert: str | Path | None, key: str | Path | None
) -> tuple[Path | None, Path | None]:
    """--tls-cert/--tls-key or BULKHEAD_TLS_CERT/KEY: both or neither, readable files."""
    cert = cert or env.get("BULKHEAD_TLS_CERT") or None
    key = key or env.get("BULKHEAD_TLS_KEY") or None
    if (cert is None) != (key is None):
        raise ConfigError("TLS needs both --tls-cert and --tls-key (or neither)")
    if cert is None or key is None:
        return None, None
    paths = Path(cert).expanduser().resolve(), Path(key).expanduser().resolve()
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"TLS file {path} does not exist")
    return paths


def _trust_domain(env: Mapping[str, str]) -> str:
    value = (env.get("BULKHEAD_TRUST_DOMAIN") or "bulkhead.local").strip()
    if not re.fullmatch(r"[a-z0-9._-]{1,255}", value):
        raise ConfigError("BULKHEAD_TRUST_DOMAIN may hold only lowercase letters, digits and . _ -")
    return value


def _check_port(name: str, port: int) -> int:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} must be between 0 and 65535, got {port}")
    return port


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
    env = os.environ if env is None else env
    directory = Path(data_dir or env.get("BULKHEAD_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"data dir {directory} exists and is not a directory")
    database_url = _database_url(env, directory.resolve())
    cert, key = _tls_files(env, tls_cert, tls_key)
    return Settings(
        data_dir=directory.resolve(),
        database_url=database_url,
        database_admin_url=_admin_url(env, database_url),
        host=host or env.get("BULKHEAD_HOST") or "127.0.0.1",
        port=_check_port(
            "--port", port if port is not None else _int(env, "BULKHEAD_PORT", 8080, 0, 65535)
        ),
        metrics_port=_check_port(
            "--metrics-port",
            metrics_port
            if metrics_port is not None
            else _int(env, "BULKHEAD_METRICS_PORT", 9464, 0, 65535),
        ),
        max_body_bytes=_int(env, "BULKHEAD_MAX_BODY_BYTES", 8 * 1024 * 1024, 1024, 1 << 31),
        max_file_bytes=_int(env, "BULKHEAD_MAX_FILE_BYTES", 32 * 1024 * 1024, 1024, 1 << 34),
        max_model_bytes=_int(
            env, "BULKHEAD_MAX_MODEL_BYTES", 4 * 1024 * 1024 * 1024, 1024, 1 << 40
        ),
        kms_master_key=env.get("BULKHEAD_KMS_MASTER_KEY") or None,
        kms_backend=_kms_backend(env),
        pkcs11_module=env.get("BULKHEAD_PKCS11_MODULE") or None,
        pkcs11_token=env.get("BULKHEAD_PKCS11_TOKEN") or None,
        pkcs11_pin=env.get("BULKHEAD_PKCS11_PIN") or None,
        maintenance_interval_s=_int(env, "BULKHEAD_MAINTENANCE_INTERVAL_S", 600, 0, 86_400),
        start_workers=env.get("BULKHEAD_START_WORKERS", "1") not in ("0", "false", "no"),
        audit_origin=_origin(env.get("BULKHEAD_AUDIT_ORIGIN") or "bulkhead/audit"),
        audit_witness_url=_witness(env.get("BULKHEAD_AUDIT_WITNESS_URL")),
        tls_cert=cert,
        tls_key=key,
        trust_domain=_trust_domain(env),
        worker_mtls=env.get("BULKHEAD_WORKER_MTLS", "1") not in ("0", "false", "no"),
        svid_lifetime_s=_int(env, "BULKHEAD_SVID_LIFETIME_S", 3600, 4, 30 * 86_400),
        alert_webhook_url=_alert_webhook(env.get("BULKHEAD_ALERT_WEBHOOK_URL")),
        redis_url=_redis_url(env.get("BULKHEAD_REDIS_URL")),
        shared_capacity=_int(env, "BULKHEAD_SHARED_CAPACITY", 64, 1, 100_000),
        queue_wait_s=_int(env, "BULKHEAD_QUEUE_WAIT_MS", 10_000, 0, 600_000) / 1000,
        worker_sandbox=_choice(env, "BULKHEAD_WORKER_SANDBOX", ("on", "off", "require")),
        worker_uid_base=_int(env, "BULKHEAD_WORKER_UID_BASE", 910_000, 1000, 2**31 - 2**20),
        worker_uid_count=_int(env, "BULKHEAD_WORKER_UID_COUNT", 1000, 1, 2**20),
        worker_memory_mb=_int(env, "BULKHEAD_WORKER_MEMORY_MB", 0, 0, 1 << 24),
        signin_client_rpm=_int(env, "BULKHEAD_SIGNIN_CLIENT_RPM", 30, 1, 1_000_000),
        signin_rpm=_int(env, "BULKHEAD_SIGNIN_RPM", 600, 1, 1_000_000),
        signin_workers=_int(env, "BULKHEAD_SIGNIN_WORKERS", 2, 1, 64),
        signin_queue=_int(env, "BULKHEAD_SIGNIN_QUEUE", 16, 0, 10_000),
        upstream_allow_cidrs=_cidrs(env, "BULKHEAD_UPSTREAM_ALLOW_CIDRS"),
        audit_key_rotation_days=_int(env, "BULKHEAD_AUDIT_KEY_ROTATION_DAYS", 90, 0, 3650),
        platform_kek_rotation_days=_int(env, "BULKHEAD_PLATFORM_KEK_ROTATION_DAYS", 90, 0, 3650),
        ca_rotation_days=_int(env, "BULKHEAD_CA_ROTATION_DAYS", 365, 0, 1700),
        ca_activation_s=_int(env, "BULKHEAD_CA_ACTIVATION_S", 86_400, 5, 30 * 86_400),
        cache_salt_rotation_days=_int(env, "BULKHEAD_CACHE_SALT_ROTATION_DAYS", 90, 0, 3650),
    )


def _cidrs(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of CIDRs (none may be /0), in canonical form."""
    found = []
    for item in (env.get(name) or "").split(","):
        if not item.strip():
            continue
        try:
            network = ipaddress.ip_network(item.strip(), strict=True)
        except ValueError:
            raise ConfigError(f"{name} holds {item.strip()[:64]!r}, which is not a CIDR") from None
        if network.prefixlen == 0:
            raise ConfigError(f"{name} may not allow every address")
        found.append(str(network))
    return tuple(found)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """`name`'s value, one of `choices`; the first is the default."""
    value = (env.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _redis_url(raw: str | None) -> str | None:
    if not raw:
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        # Never echo the value: it may carry a password.
        raise ConfigError("BULKHEAD_REDIS_URL must be a redis://, rediss:// or unix:// URL")
    return raw

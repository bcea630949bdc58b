"""Configuration: command-line values, then environment variables, then embedded defaults.

Settings are validated once at start-up; a bad one raises `ConfigError`
carrying a single line that the CLI prints before exiting with status 2.
"""

from __future__ import annotations

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
    kms_master_key: str | None = field(default=None, repr=False)
    upstream_connect_timeout_s: float = 5.0
    catalog_poll_s: float = 1.0
    start_workers: bool = True
    audit_origin: str = "bulkhead/audit"
    audit_witness_url: str | None = None

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


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    url = env.get("BULKHEAD_DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{data_dir / 'bulkhead.db'}"
    try:
        parts = urlsplit(url)
        scheme, _port = parts.scheme, parts.port
    except ValueError:
        raise ConfigError(
            "BULKHEAD_DATABASE_URL is not a valid URL (check its host and port)"
        ) from None
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if scheme == "sqlite":
        return url
    raise ConfigError(
        f"BULKHEAD_DATABASE_URL must start with postgresql:// or sqlite://, got scheme {scheme!r}"
    )


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
) -> Settings:
    """Build validated settings; explicit arguments win over the environment."""
    env = os.environ if env is None else env
    directory = Path(data_dir or env.get("BULKHEAD_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"data dir {directory} exists and is not a directory")
    return Settings(
        data_dir=directory.resolve(),
        database_url=_database_url(env, directory.resolve()),
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
        kms_master_key=env.get("BULKHEAD_KMS_MASTER_KEY") or None,
        start_workers=env.get("BULKHEAD_START_WORKERS", "1") not in ("0", "false", "no"),
        audit_origin=_origin(env.get("BULKHEAD_AUDIT_ORIGIN") or "bulkhead/audit"),
        audit_witness_url=_witness(env.get("BULKHEAD_AUDIT_WITNESS_URL")),
    )

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

from bulkhead.settings._checks import DEFAULT_DATA_DIR, KMS_BACKENDS
from bulkhead.settings._table import Setting, Source, markdown, read_rows, rows_of
from bulkhead.settings._tenants import Tenants

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_URL", "KMS_BACKENDS", "SETTINGS", "Setting", "Settings"]
__all__ += ["Source", "load", "markdown_table"]


@dataclass(frozen=True, slots=True)
class Settings(Tenants):
    """Every setting, in the order `load` reads them (a later one may use an earlier one).

    The fields are declared by group, each group a module extending the one before it:
    `_core` (store, listeners), `_workloads` (sizes, vectors, fine-tuning, KMS),
    `_operations` (catalog, maintenance, HTTP server), `_security` (audit, CA, sandbox,
    sign-in, rotations) and `_tenants` (per-tenant bounds).
    """

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

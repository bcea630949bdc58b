"""How the settings that need more than a type and a range are read and checked.

Each takes its row of the table and the `Source` (the environment, the
command line, the settings read so far) and raises `ConfigError` naming the
variable; none echoes a value that may carry a secret.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bulkhead.errors import ConfigError
from bulkhead.settings._table import Setting, Source, read_int
from bulkhead.web.cookies import HOST

DEFAULT_DATA_DIR = ".bulkhead"
KMS_BACKENDS = ("local", "pkcs11")


def data_dir(row: Setting, source: Source) -> Path:
    raw = source.given.get("data_dir") or source.env.get(row.variable) or DEFAULT_DATA_DIR
    directory = Path(raw).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"data dir {directory} exists and is not a directory")
    return directory.resolve()


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


def database_url(row: Setting, source: Source) -> str:
    url = source.env.get(row.variable, "").strip()
    if not url:
        return f"sqlite:///{source.values['data_dir'] / 'bulkhead.db'}"
    return _sql_url(row.variable, url)


def admin_url(row: Setting, source: Source) -> str | None:
    url = source.env.get(row.variable, "").strip()
    if not url:
        return None
    url = _sql_url(row.variable, url)
    if not (
        url.startswith("postgresql") and source.values["database_url"].startswith("postgresql")
    ):
        raise ConfigError(
            "BULKHEAD_DATABASE_ADMIN_URL is for PostgreSQL: both it and BULKHEAD_DATABASE_URL "
            "must start with postgresql://"
        )
    return url


def origin(row: Setting, source: Source) -> str:
    value = source.env.get(row.variable) or row.default
    if not re.fullmatch(r"[A-Za-z0-9._/-]{1,128}", value):
        raise ConfigError(f"{row.variable} may hold only letters, digits and . _ / -")
    return str(value)


def web_origin(row: Setting, source: Source) -> str | None:
    """`scheme://host[:port]` as a browser writes an origin (lowercase, no path), or None."""
    value = (source.env.get(row.variable) or "").strip().lower()
    if not value:
        return None
    scheme, _, host = value.partition("://")
    if scheme not in ("http", "https") or not HOST.fullmatch(host):
        raise ConfigError(f"{row.variable} must be an origin: https://host[:port], no path")
    return value


def http_url(row: Setting, source: Source) -> str | None:
    url = source.env.get(row.variable)
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{row.variable} must be an http(s) URL")
    return url


def otlp_url(row: Setting, source: Source) -> str | None:
    """An http(s) URL with a host and no credential in it: the exporter logs its path and
    query with every failed export, so a token goes in BULKHEAD_OTLP_HEADERS instead."""
    url = http_url(row, source)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        _port = parts.port
    except ValueError:
        raise ConfigError(f"{row.variable} is not a valid URL (check its host and port)") from None
    if not parts.hostname:
        raise ConfigError(f"{row.variable} must name the collector's host")
    if "@" in parts.netloc or parts.query or parts.fragment or "#" in url:
        raise ConfigError(
            f"{row.variable} may not hold a user, password, query or fragment (they are logged "
            "with a failed export): put a token in BULKHEAD_OTLP_HEADERS"
        )
    return url


def redis_url(row: Setting, source: Source) -> str | None:
    raw = source.env.get(row.variable)
    if not raw:
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        # Never echo the value: it may carry a password.
        raise ConfigError(f"{row.variable} must be a redis://, rediss:// or unix:// URL")
    return raw


def kms_backend(row: Setting, source: Source) -> str:
    """BULKHEAD_KMS; "pkcs11" needs its module, token and PIN (the PIN is never echoed)."""
    env = source.env
    backend = (env.get(row.variable) or row.default).strip().lower()
    if backend not in KMS_BACKENDS:
        raise ConfigError(f"BULKHEAD_KMS must be 'local' or 'pkcs11', got {backend!r}")
    if backend == "pkcs11":
        names = ("BULKHEAD_PKCS11_MODULE", "BULKHEAD_PKCS11_TOKEN", "BULKHEAD_PKCS11_PIN")
        missing = [name for name in names if not env.get(name)]
        if missing:
            raise ConfigError(f"BULKHEAD_KMS=pkcs11 needs {', '.join(missing)} to be set")
    return str(backend)


def _tls_files(source: Source) -> tuple[Path | None, Path | None]:
    """--tls-cert/--tls-key or BULKHEAD_TLS_CERT/KEY: both or neither, readable files."""
    env, given = source.env, source.given
    cert = given.get("tls_cert") or env.get("BULKHEAD_TLS_CERT") or None
    key = given.get("tls_key") or env.get("BULKHEAD_TLS_KEY") or None
    if (cert is None) != (key is None):
        raise ConfigError("TLS needs both --tls-cert and --tls-key (or neither)")
    if cert is None or key is None:
        return None, None
    paths = Path(cert).expanduser().resolve(), Path(key).expanduser().resolve()
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"TLS file {path} does not exist")
    return paths


def tls_cert(row: Setting, source: Source) -> Path | None:
    return _tls_files(source)[0]


def tls_key(row: Setting, source: Source) -> Path | None:
    return _tls_files(source)[1]


def metrics_host(row: Setting, source: Source) -> str:
    """An IP address to serve metrics on; one off loopback needs a token file."""
    raw = (source.env.get(row.variable) or row.default).strip()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise ConfigError(f"{row.variable} must be an IP address, got {raw[:64]!r}") from None
    if not address.is_loopback and not source.env.get("BULKHEAD_METRICS_TOKEN_FILE"):
        raise ConfigError(
            f"{row.variable}={raw} is off loopback: set BULKHEAD_METRICS_TOKEN_FILE too "
            "(the metrics name tenants and models, so scrapers must authenticate)"
        )
    return str(address)


def metrics_token_file(row: Setting, source: Source) -> Path | None:
    """A readable file whose (stripped) content is a token of 32 characters or more."""
    raw = source.env.get(row.variable)
    if not raw:
        return None
    path = Path(raw).expanduser().resolve()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{row.variable}: cannot read {path}") from None
    if len(token) < 32 or any(c.isspace() for c in token):
        raise ConfigError(f"{row.variable}: the token must be 32+ characters without spaces")
    return path


def trust_domain(row: Setting, source: Source) -> str:
    value = (source.env.get(row.variable) or row.default).strip()
    if not re.fullmatch(r"[a-z0-9._-]{1,255}", value):
        raise ConfigError(f"{row.variable} may hold only lowercase letters, digits and . _ -")
    return str(value)


def millis(row: Setting, source: Source) -> float:
    """A duration in seconds, set in milliseconds (`lo` and `hi` are milliseconds)."""
    return read_int(source.env, row.variable, round(row.default * 1000), row.low, row.high) / 1000


def uvicorn(row: Setting, source: Source) -> bool:
    """The acknowledgement uvicorn needs: it has no head, body or send timeout, so a
    slowloris client holds a connection for as long as it likes (docs/operations.md)."""
    raw = source.env.get(row.variable, "").strip().lower()
    if raw not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"{row.variable} must be 1 or 0, got {raw!r}")
    accepted = raw in ("1", "true", "yes")
    if source.values["http_server"] == "uvicorn" and not accepted:
        raise ConfigError(
            "BULKHEAD_HTTP_SERVER=uvicorn has no head, body or send timeout and no cap on "
            f"idle connections: use the default server, or set {row.variable}=1 with a proxy "
            'in front that bounds them (docs/operations.md, "HTTP server")'
        )
    return accepted


def cidrs(row: Setting, source: Source) -> tuple[str, ...]:
    """A comma-separated list of CIDRs (none may be /0), in canonical form."""
    name, found = row.variable, []
    for item in (source.env.get(name) or "").split(","):
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


def ratio(row: Setting, source: Source) -> float:
    """A fraction from 0 to 1."""
    raw = source.env.get(row.variable, "").strip()
    if not raw:
        return float(row.default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{row.variable} must be a number from 0 to 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{row.variable} must be a number from 0 to 1, got {raw!r}")
    return value


def otlp_headers(row: Setting, source: Source) -> tuple[tuple[str, str], ...]:
    """OTLP's `name=value,name=value` (values percent-encoded); they may hold a token,
    so an error names the variable and the pair's place, never a value."""
    raw = source.env.get(row.variable, "").strip()
    pairs: list[tuple[str, str]] = []
    for place, item in enumerate(filter(None, (p.strip() for p in raw.split(","))), 1):
        name, equals, value = item.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name.strip()):
            raise ConfigError(f"{row.variable}: pair {place} must be name=value")
        decoded = unquote(value.strip())
        if any(c in decoded for c in "\r\n\0"):
            raise ConfigError(f"{row.variable}: pair {place} holds a line break or NUL")
        pairs.append((name.strip().lower(), decoded))
    return tuple(pairs)

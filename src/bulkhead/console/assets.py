"""The console's pages and static files, shipped inside the package (no build step).

Each file is read once, when the console is built, and served from memory.
The public paths (the sign-in page, its API, the OIDC sign-in's start and
callback, and the static files) are listed here for the gateway's allowlist
(`gateway/chain.py`); every other console path needs a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

PREFIX = "/console"
STATIC = "/console/static/"
SIGN_IN_PAGE = "/console/login"
LOGIN = "/console/api/login"
LOGOUT = "/console/api/logout"
SESSION = "/console/api/session"
# Sign-in through the tenant's OIDC provider: the start (a redirect to it) and its callback.
OIDC_START = "/console/login/oidc"
OIDC_CALLBACK = "/console/login/oidc/callback"

_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
}
# The static files, by name under /console/static/.
FILES = (
    "console.css",
    "api.js",
    "ui.js",
    "login.js",
    "home.js",
    "keys.js",
    "principals.js",
    "tenants.js",
    "verify.js",
    "charts.js",
    "audit.js",
    "usage.js",
    "page.js",
    "access.js",
    "capacity.js",
    "keystatus.js",
    "models.js",
    "policies.js",
    "quotas.js",
    "settings.js",
    "usage_table.js",
    "versions.js",
    "platform_principals.js",
)
# The pages that need a session, by path, and the file each is.
PAGES = {
    "/console": "home.html",
    "/console/": "home.html",
    "/console/keys": "keys.html",
    "/console/principals": "principals.html",
    "/console/tenants": "tenants.html",
    "/console/audit": "audit.html",
    "/console/usage": "usage.html",
    "/console/access": "access.html",
    "/console/capacity": "capacity.html",
    "/console/key-status": "keystatus.html",
    "/console/models": "models.html",
    "/console/policies": "policies.html",
    "/console/quotas": "quotas.html",
    "/console/settings": "settings.html",
    "/console/usage-table": "usage_table.html",
    "/console/versions": "versions.html",
    "/console/platform-principals": "platform_principals.html",
}
PUBLIC_PATHS = frozenset(
    {SIGN_IN_PAGE, LOGIN, OIDC_START, OIDC_CALLBACK, *(STATIC + name for name in FILES)}
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: bytes


def _read(name: str) -> Asset:
    body = resources.files("bulkhead.console").joinpath("static", name).read_bytes()
    return Asset(body, _TYPES[name[name.rindex(".") :]])


def load() -> dict[str, Asset]:
    """Every console path that answers a file, with the file."""
    files = {STATIC + name: _read(name) for name in FILES}
    pages = {path: _read(name) for path, name in PAGES.items()}
    return {**files, **pages, SIGN_IN_PAGE: _read("login.html")}

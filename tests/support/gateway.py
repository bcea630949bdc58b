"""A real gateway on 127.0.0.1 in a background thread, in front of a fake upstream."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from aiohttp import web

from bulkhead.app import Application, build, initialize
from bulkhead.settings import load
from bulkhead.testing.fake_upstream import FakeUpstream
from tests.support.postgres import free_port
from tests.support.threaded import start_server


class UpstreamThread:
    """The fake upstream, serving from its own event loop."""

    def __init__(self, **options: Any):
        self.fake = FakeUpstream(**options)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.fake.app(), access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> UpstreamThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""


def http(
    method: str,
    url: str,
    key: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Response:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if key:
        request.add_header("authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("content-type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as r:
            status, payload, hdrs = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, payload, hdrs = e.code, e.read(), dict(e.headers)
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = None
    return Response(status, parsed, {k.lower(): v for k, v in hdrs.items()}, payload)


def _server(settings: Any, app: Application, port: int) -> Any:
    """The server `bulkhead serve` runs (`http_server`), on 127.0.0.1:`port`."""
    if settings.http_server == "uvicorn":
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            proxy_headers=False,
            log_level="warning",
            access_log=False,
            **_tls_options(settings, app),
        )
        return uvicorn.Server(config)
    from bulkhead.app import server_ssl_context
    from bulkhead.web.server import Server, ServerConfig

    assert app.ca is not None
    context = server_ssl_context(settings, app.ca)
    return Server(app, ServerConfig(host="127.0.0.1", port=port, ssl=context))


def _tls_options(settings: Any, app: Application) -> dict[str, Any]:
    """What `bulkhead serve` passes uvicorn when TLS is on."""
    from bulkhead.app import server_ssl_context
    from bulkhead.web.tls import TlsHttpToolsProtocol

    assert app.ca is not None
    context = server_ssl_context(settings, app.ca)
    if context is None:
        return {}
    return {"http": TlsHttpToolsProtocol, "ssl_context_factory": lambda config, default: context}


# The operator's allowance for an IdP served on 127.0.0.1 (tests' JWKS servers, oidc-provider):
# without it every IdP fetch to a loopback address is refused (`identity/idp_fetch`).
LOOPBACK_IDP = {"BULKHEAD_IDP_ALLOW_CIDRS": "127.0.0.1/32"}


class GatewayThread:
    """`bulkhead init` + `bulkhead serve`, in-process, on a free port."""

    def __init__(
        self,
        data_dir: Path,
        database_url: str | None,
        *,
        admin_url: str | None = None,
        workers: bool = False,
        max_body_bytes: int | None = None,
        env: dict[str, str] | None = None,
        fine_tuning_runner: Any = None,
    ):
        extra_env = env
        env = {"BULKHEAD_START_WORKERS": "1" if workers else "0"}
        # The random demo-chat starts in well under a second; the bundled SmolLM2 has its
        # own tests (tests/integration/test_bundled_model.py).
        env["BULKHEAD_DEMO_CHAT_MODEL"] = "demo-chat"
        # Every test client signs in from 127.0.0.1: the sign-in rate limits are tested
        # in tests/security/test_sign_in_abuse.py, which sets its own.
        env |= {"BULKHEAD_SIGNIN_CLIENT_RPM": "1000000", "BULKHEAD_SIGNIN_RPM": "1000000"}
        if database_url:
            env["BULKHEAD_DATABASE_URL"] = database_url
        if admin_url:
            env["BULKHEAD_DATABASE_ADMIN_URL"] = admin_url
        if max_body_bytes:
            env["BULKHEAD_MAX_BODY_BYTES"] = str(max_body_bytes)
        # The suite runs against either HTTP server: `BULKHEAD_HTTP_SERVER=uvicorn pytest ...`.
        # Choosing uvicorn there is the acknowledgement it needs (docs/operations.md).
        if "BULKHEAD_HTTP_SERVER" in os.environ:
            env["BULKHEAD_HTTP_SERVER"] = os.environ["BULKHEAD_HTTP_SERVER"]
            env["BULKHEAD_HTTP_UVICORN_UNBOUNDED"] = "1"
        env.update(extra_env or {})
        self.port = free_port()
        self.settings = load(data_dir=data_dir, port=self.port, metrics_port=0, env=env)
        scheme = "https" if self.settings.tls_cert else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        init = initialize(self.settings, self.url)
        self.admin_key, self.demo_key = init.admin_key, init.demo_key or ""
        self.app: Application = build(self.settings, fine_tuning_runner=fine_tuning_runner)
        if self.demo_key:
            self._lift_demo_limits()
        self.server = _server(self.settings, self.app, self.port)
        self._thread: threading.Thread | None = None
        self._approver_key: str | None = None
        self._held: set[tuple[str, str]] = set()  # (action, tenant) the admin holds a grant on

    def start(self) -> GatewayThread:
        self._thread = start_server(self.server, what="the gateway")
        return self

    def _lift_demo_limits(self) -> None:
        """Tests drive the demo tenant hard; its tier's rate limits are tested elsewhere."""
        from bulkhead.store import repo

        unlimited = {"requests_per_minute": None, "tokens_per_minute": None, "concurrency": None}
        with self.app.db.platform_transaction() as session:
            repo.set_tenant_limits(session, "demo", unlimited)
        self.app.catalog.reload()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(20)

    # Conveniences for tests --------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None, key: str | None = None) -> Response:
        return http(method, self.url + path, key or self.admin_key, body, context=self._tls())

    def call(
        self, method: str, path: str, key: str | None, body: Any = None, **kw: Any
    ) -> Response:
        return http(method, self.url + path, key, body, **{"context": self._tls(), **kw})

    def _tls(self) -> ssl.SSLContext | None:
        """Trust the gateway's own (self-signed) certificate when it serves TLS."""
        cert = self.settings.tls_cert
        return ssl.create_default_context(cafile=str(cert)) if cert else None

    def must(self, method: str, path: str, body: Any = None) -> Any:
        response = self.admin(method, path, body)
        assert response.status < 300, (response.status, response.body)
        return response.body

    def tenant(self, name: str, tier: str = "shared") -> Any:
        return self.must("POST", "/admin/v1/tenants", {"name": name, "tier": tier})

    def key(self, tenant: str, **body: Any) -> str:
        return str(self.mint(tenant, **body)["secret"])

    def mint(self, tenant: str, **body: Any) -> Any:
        """A key in `tenant`, created by the platform admin under a grant (`admin:keys.create`)."""
        path = f"/admin/v1/tenants/{tenant}/keys"
        self.hold("admin:keys.create", tenant)
        created = self.admin("POST", path, body)
        if created.status == 403:  # A tenant deleted and made again: its grant is gone.
            self.hold("admin:keys.create", tenant, again=True)
            created = self.admin("POST", path, body)
        assert created.status == 201, (created.status, created.body)
        return created.body

    def hold(self, action: str, tenant: str, *, again: bool = False) -> None:
        """Make sure the bootstrap admin holds a live grant for `action` on `tenant`."""
        if again or (action, tenant) not in self._held:
            self.grant(action, tenant, duration_s=4 * 3600)
            self._held.add((action, tenant))

    def model(
        self,
        name: str,
        upstream: str,
        *,
        tenant: str | None = None,
        grant: tuple[str, ...] = (),
        **extra: Any,
    ) -> Any:
        body: dict[str, Any] = {"name": name, "upstream": upstream, **extra}
        if tenant:
            body["tenant"] = tenant
        created = self.must("POST", "/admin/v1/models", body)
        for t in grant:
            self.must("POST", f"/admin/v1/models/{name}/grants", {"tenant": t})
        return created

    def allow_upstreams(self, tenant: str, entries: list[str]) -> Any:
        """The platform's upstream allowlist for a tenant (`127.0.0.1/32` for the fake upstream)."""
        path = f"/admin/v1/tenants/{tenant}/upstream-allowlist"
        return self.must("PUT", path, {"entries": entries})

    def approver_key(self) -> str:
        """A second platform admin, with a principal of its own: the one who approves grants."""
        if self._approver_key is None:
            from bulkhead.domain import PrincipalKind, Role
            from bulkhead.store import repo

            with self.app.db.platform_transaction() as session:
                approver = repo.create_principal(
                    session, None, "approver", PrincipalKind.USER, [Role.PLATFORM_ADMIN]
                )
                created = repo.create_key(
                    session, None, role=Role.PLATFORM_ADMIN, principal=approver, name="approver"
                )
            self.app.catalog.reload()
            self._approver_key = created.secret
        return self._approver_key

    def grant(self, action: str, target: str = "platform", duration_s: int = 600) -> Any:
        """A live grant for the bootstrap admin: requested by it, approved by the approver."""
        made = self.must(
            "POST",
            "/admin/v1/access-requests",
            {
                "action": action,
                "target": target,
                "reason": "integration test of a privileged action",
                "duration_s": duration_s,
            },
        )
        approved = self.admin(
            "POST", f"/admin/v1/access-requests/{made['id']}/approve", key=self.approver_key()
        )
        assert approved.status == 200, (approved.status, approved.body)
        return approved.body

    def audit_events(self, *, started: bool = False) -> list[dict[str, Any]]:
        """The log's entries in order; a model call's entry written before it was forwarded
        (outcome "started") only with `started`, so each call is one entry otherwise."""
        from sqlalchemy import select

        from bulkhead.store.schema import AuditEntryRow

        self.app.audit.flush()
        with self.app.db.platform_transaction() as session:
            bodies = session.execute(select(AuditEntryRow.body).order_by(AuditEntryRow.idx))
            entries = [json.loads(body) for body in bodies.scalars()]
        return [e for e in entries if started or e.get("outcome") != "started"]

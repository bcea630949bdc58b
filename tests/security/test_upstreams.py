"""Upstreams as an attacker sees them: a tenant admin who publishes model versions.

Issue 12 items 1 and 2: a version's upstream is the tenant's choice, so it
must not name a platform secret (the gateway used to send any environment
variable's value as the bearer token), must not reach the gateway's own
network (loopback, link-local, the cloud metadata service, private ranges),
not even through DNS that answers differently at connect time or through a
redirect, and what comes back must not tell a closed port from an HTTP 401 or
relay an internal service's body.  All of it through a real gateway.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from bulkhead.cli.client import ApiError, Client, Profile
from tests.support.gateway import GatewayThread, Response, UpstreamThread
from tests.support.postgres import free_port

T = "/tenant/v1"
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
SENTINEL = "sentinel-master-key-must-never-leave"
LOOPBACK = ["127.0.0.1/32"]
BASE = "http://127.0.0.1:9/v1"  # The platform's deployment of each tenant's model (unused).


class AppThread:
    """Any aiohttp application on 127.0.0.1, in its own thread; it counts what it is sent."""

    def __init__(self, build: Callable[[AppThread], web.Application]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[dict[str, str]] = []
        self._app = build(self)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self._app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> AppThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def answering(status: int, body: bytes, headers: dict[str, str] | None = None) -> Any:
    """An app that records every request and gives every one the same answer."""

    def build(server: AppThread) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            server.seen.append({k.lower(): v for k, v in request.headers.items()})
            return web.Response(
                status=status, body=body, headers=headers, content_type="application/json"
            )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    return build


@pytest.fixture
def serve() -> Iterator[Callable[..., AppThread]]:
    started: list[AppThread] = []

    def start(build: Callable[[AppThread], web.Application]) -> AppThread:
        started.append(AppThread(build).start())
        return started[-1]

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture(scope="module")
def capture() -> Iterator[UpstreamThread]:
    """A tenant's own model server: a fake upstream that records the headers it got."""
    thread = UpstreamThread().start()
    yield thread
    thread.stop()


def tenant_admin(gw: GatewayThread, tenant: str, *, engine: str | None = None, **extra: Any) -> str:
    """A tenant with a private model `<tenant>-m` and a tenant admin's key."""
    gw.tenant(tenant)
    model_extra = {"engine": engine} if engine else {}
    gw.model(f"{tenant}-m", BASE, tenant=tenant, upstream_model="base", **model_extra)
    return gw.key(tenant, role="tenant_admin", **extra)


def allow(gw: GatewayThread, tenant: str, entries: list[str]) -> Response:
    """The platform's egress allowlist for a tenant (an unknown route on the old gateway)."""
    return gw.admin("PUT", f"/admin/v1/tenants/{tenant}/upstream-allowlist", {"entries": entries})


def publish(gw: GatewayThread, key: str, tenant: str, version: str, **body: Any) -> Response:
    return gw.call("POST", f"{T}/models/{tenant}-m/versions", key, {"version": version, **body})


def chat(gw: GatewayThread, key: str, model: str, **extra: Any) -> Response:
    return gw.call("POST", "/v1/chat/completions", key, {"model": model, **CHAT, **extra})


# Item 1: a tenant never names a platform secret ------------------------------------------------


def test_a_tenant_admin_cannot_make_the_gateway_send_an_env_var_to_its_server(
    gateway: GatewayThread,
    capture: UpstreamThread,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BULKHEAD_KMS_MASTER_KEY", SENTINEL)
    monkeypatch.setenv("VLLM_KEY", SENTINEL + "-vllm")
    other = f"{unique}-other"
    ta = tenant_admin(gateway, unique)
    gateway.tenant(other)
    allow(gateway, unique, LOOPBACK)
    # The platform registers a credential and allows it to another tenant only.
    gateway.admin("POST", "/admin/v1/upstream-credentials", {"name": "vllm", "env": "VLLM_KEY"})
    gateway.admin("POST", "/admin/v1/upstream-credentials/vllm/grants", {"tenant": other})
    attempts = [
        {"api_key_env": "BULKHEAD_KMS_MASTER_KEY"},
        {"api_key_env": "VLLM_KEY"},
        {"credential": "BULKHEAD_KMS_MASTER_KEY"},
        {"credential": "vllm"},
    ]
    answers = []
    for n, attempt in enumerate(attempts):
        answers.append(publish(gateway, ta, unique, str(n), upstream=capture.url, **attempt))
        chat(gateway, ta, f"{unique}-m")
        sent = " ".join(capture.fake.last_headers.values())
        assert SENTINEL not in sent, f"{attempt} made the gateway send a secret"
    assert [a.status for a in answers[:2]] == [400, 400]  # api_key_env is no field any more
    # A credential that does not exist and one allowed to another tenant look the same.
    assert answers[2].status == answers[3].status == 404
    assert answers[2].body["error"]["message"].replace("BULKHEAD_KMS_MASTER_KEY", "X") == answers[
        3
    ].body["error"]["message"].replace("vllm", "X")


def test_the_platform_cannot_register_the_platforms_own_env_vars(gateway: GatewayThread) -> None:
    for name in ("BULKHEAD_KMS_MASTER_KEY", "BULKHEAD_DATABASE_URL", "BULKHEAD_PKCS11_PIN"):
        body = {"name": name.lower(), "env": name}
        created = gateway.admin("POST", "/admin/v1/upstream-credentials", body)
        assert created.status == 400, (name, created.status, created.body)


def test_a_sealed_credential_is_never_shown_and_reaches_only_allowed_tenants(
    gateway: GatewayThread, capture: UpstreamThread, unique: str
) -> None:
    secret = f"sk-{unique}-only-for-the-upstream"
    ta = tenant_admin(gateway, unique)
    assert allow(gateway, unique, LOOPBACK).status == 200
    name = f"{unique}-cred"
    created = gateway.admin(
        "POST", "/admin/v1/upstream-credentials", {"name": name, "secret": secret}
    )
    assert created.status == 201, created.body
    listed = gateway.admin("GET", "/admin/v1/upstream-credentials")
    shown = gateway.admin("GET", f"/admin/v1/upstream-credentials/{name}")
    for response in (created, listed, shown):
        assert secret not in response.raw.decode()
    assert publish(gateway, ta, unique, "1", upstream=capture.url, credential=name).status == 404
    granted = gateway.admin(
        "POST", f"/admin/v1/upstream-credentials/{name}/grants", {"tenant": unique}
    )
    assert granted.status == 204, granted.body
    own = gateway.call("GET", f"{T}/upstreams", ta)
    assert own.body == {"allowlist": LOOPBACK, "credentials": [name]}
    assert secret not in own.raw.decode()
    assert publish(gateway, ta, unique, "1", upstream=capture.url, credential=name).status == 201
    assert chat(gateway, ta, f"{unique}-m").status == 200
    assert capture.fake.last_headers.get("Authorization") == f"Bearer {secret}"
    # Withdrawn from the tenant: its version no longer gets the secret.
    gateway.admin("DELETE", f"/admin/v1/upstream-credentials/{name}/grants/{unique}")
    capture.fake.last_headers = {}
    assert chat(gateway, ta, f"{unique}-m").status >= 500
    assert secret not in " ".join(capture.fake.last_headers.values())
    events = [e for e in gateway.audit_events() if "upstream_credentials" in e["action"]]
    assert events and all(secret not in str(e) for e in events)


# Item 2: SSRF ----------------------------------------------------------------------------------

INTERNAL = [
    "http://127.0.0.1:{port}/v1",
    "http://127.0.0.1.:{port}/v1",
    "http://localhost:{port}/v1",
    "http://[::1]:{port}/v1",
    "http://[::ffff:127.0.0.1]:{port}/v1",
    "http://[::ffff:7f00:1]:{port}/v1",
    "http://2130706433:{port}/v1",
    "http://0x7f000001:{port}/v1",
    "http://0177.0.0.1:{port}/v1",
    "http://127.1:{port}/v1",
    "http://0:{port}/v1",
    "http://0.0.0.0:{port}/v1",
    "http://allowed.example.com@127.0.0.1:{port}/v1",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://10.0.0.5:8000/v1",
    "http://192.168.1.1/v1",
    "http://172.16.0.1/v1",
    "http://100.64.0.1/v1",
    "http://[fe80::1]/v1",
    "http://[fd12:3456::1]/v1",
    "http://224.0.0.1/v1",
    "http://allowed.example.com/v1?x=http://127.0.0.1/",
    "http://allowed.example.com/v1#frag",
]


@pytest.mark.parametrize("template", INTERNAL)
def test_versions_pointing_inside_are_refused_without_an_allowlist_entry(
    gateway: GatewayThread, unique: str, template: str
) -> None:
    ta = tenant_admin(gateway, unique)
    allow(gateway, unique, ["allowed.example.com", "*.example.com"])
    url = template.format(port=gateway.port)
    refused = publish(gateway, ta, unique, "1", upstream=url)
    assert refused.status in (400, 403), (url, refused.status, refused.body)
    assert refused.body["error"]["param"] == "upstream"


def test_without_an_allowlist_a_tenant_publishes_no_upstream_at_all(
    gateway: GatewayThread, unique: str
) -> None:
    ta = tenant_admin(gateway, unique)
    refused = publish(gateway, ta, unique, "1", upstream="https://api.example.com/v1")
    assert refused.status == 403, refused.body
    assert allow(gateway, unique, ["api.example.com"]).status == 200
    assert publish(gateway, ta, unique, "1", upstream="https://api.example.com/v1").status == 201


def test_dns_that_answers_loopback_at_connect_time_is_refused(
    gateway: GatewayThread, capture: UpstreamThread, unique: str
) -> None:
    # `localhost` stands for a rebinding name: its host entry admits the name, never
    # the loopback address it resolves to when the gateway connects.
    ta = tenant_admin(gateway, unique)
    allow(gateway, unique, ["localhost"])
    url = f"http://localhost:{capture.port}/v1"
    assert publish(gateway, ta, unique, "1", upstream=url).status == 201
    before = capture.fake.requests
    answer = chat(gateway, ta, f"{unique}-m")
    assert answer.status == 502, answer.body
    assert capture.fake.requests == before


def test_a_redirect_to_an_internal_address_is_not_followed(
    gateway: GatewayThread, unique: str, serve: Callable[..., AppThread]
) -> None:
    internal = serve(answering(200, b'{"internal": "admin console"}'))
    target = f"{internal.url}/v1/chat/completions"
    redirector = serve(answering(307, b"", {"location": target}))
    ta = tenant_admin(gateway, unique)
    allow(gateway, unique, LOOPBACK)
    assert publish(gateway, ta, unique, "1", upstream=redirector.url + "/v1").status == 201
    answer = chat(gateway, ta, f"{unique}-m")
    assert redirector.seen, "the version's own server was called"
    assert internal.seen == []
    assert answer.status == 502 and b"admin console" not in answer.raw


def test_a_closed_port_and_an_http_401_look_the_same_to_the_tenant(
    gateway: GatewayThread, capture: UpstreamThread, unique: str, serve: Callable[..., AppThread]
) -> None:
    unauthorized = serve(
        answering(401, b'{"error": {"message": "invalid key for internal-billing-api"}}')
    )
    ta = tenant_admin(gateway, unique)
    allow(gateway, unique, LOOPBACK)
    servers = {
        "closed": (f"http://127.0.0.1:{free_port()}/v1", "x"),
        "unauthorized": (unauthorized.url + "/v1", "x"),
        "rejecting": (capture.url, "reject-1"),
        "failing": (capture.url, "fail-1"),
        "garbage": (capture.url, "garbage-1"),
    }
    answers = {}
    for n, (name, (url, upstream_model)) in enumerate(servers.items()):
        body = {"upstream": url, "upstream_model": upstream_model}
        assert publish(gateway, ta, unique, str(n), **body).status == 201
        answer = chat(gateway, ta, f"{unique}-m@{n}")
        answers[name] = (answer.status, answer.body)
    assert len({str(a) for a in answers.values()}) == 1, answers
    status, body = answers["closed"]
    assert status == 502
    for leak in ("401", "unreachable", "internal-billing", "bad temperature", "HTTP"):
        assert leak not in body["error"]["message"]


def test_an_internal_response_body_is_not_relayed(
    gateway: GatewayThread, unique: str, serve: Callable[..., AppThread]
) -> None:
    internal = serve(answering(200, b'{"db_password": "hunter2", "role": "internal"}'))
    ta = tenant_admin(gateway, unique)
    url = internal.url + "/v1"
    refused = publish(gateway, ta, unique, "1", upstream=url)
    assert refused.status in (400, 403)
    # Even where the platform allowed the address, a body that is no model answer stays inside.
    allow(gateway, unique, LOOPBACK)
    assert publish(gateway, ta, unique, "2", upstream=url).status == 201
    answer = chat(gateway, ta, f"{unique}-m")
    assert answer.status == 502
    assert b"hunter2" not in answer.raw and b"internal" not in answer.raw


# Versions keep the base deployment's safety options ------------------------------------------


def test_a_version_of_a_vllm_model_still_gets_the_tenants_cache_salt(
    gateway: GatewayThread, capture: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-m", capture.url, tenant=unique, engine="vllm")
    ta = gateway.key(unique, role="tenant_admin")
    assert chat(gateway, ta, f"{unique}-m").status == 200
    assert capture.fake.last_body is not None
    salt = capture.fake.last_body["cache_salt"]
    allow(gateway, unique, LOOPBACK)
    assert publish(gateway, ta, unique, "1", upstream=capture.url).status == 201
    assert chat(gateway, ta, f"{unique}-m@1").status == 200
    assert capture.fake.last_body.get("cache_salt") == salt


def test_a_version_cannot_drop_the_base_deployments_mutual_tls(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    peer = "spiffe://bulkhead.local/upstream/vllm"
    gateway.model(f"{unique}-m", "https://127.0.0.1:9/v1", tenant=unique, upstream_peer_id=peer)
    ta = gateway.key(unique, role="tenant_admin")
    allow(gateway, unique, LOOPBACK)
    refused = publish(gateway, ta, unique, "1", upstream="http://127.0.0.1:9/v1")
    assert refused.status == 400, refused.body


# The CLI follows no redirect with the caller's key --------------------------------------------


def test_the_cli_does_not_follow_a_redirect_with_its_key(serve: Callable[..., AppThread]) -> None:
    elsewhere = serve(answering(200, b'{"ok": true}'))
    redirector = serve(answering(302, b"", {"location": elsewhere.url + "/admin/v1/tenants"}))
    client = Client(Profile(url=redirector.url, key="bk_cli_key_that_must_stay_home"))
    with pytest.raises(ApiError):
        client.get("/admin/v1/tenants")
    assert redirector.seen and elsewhere.seen == []

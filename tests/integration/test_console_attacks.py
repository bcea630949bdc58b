"""The web console attacked: what a cross-site page, a stale cookie or a broken script can do.

Complements `test_console.py` (its CSRF matrix) with the review's findings,
each pinned by a test: a sign-in form that falls back to `GET` (the password
in the URL), secrets answered without `no-store`, a dead cookie left in the
browser, and the ways around the CSRF layer that must stay shut (other
methods, method-override headers, a header beside the cookie, another
tenant's or the platform's API).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.console import assets
from bulkhead.web.cookies import COOKIE
from tests.integration.test_console import ORIGIN, World
from tests.support.console import Console, platform_admin, tenant_admin
from tests.support.gateway import GatewayThread
from tests.support.inprocess import InProcessGateway

_FORM = re.compile(rb"<form\b[^>]*>")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    gw = InProcessGateway(tmp_path_factory.mktemp("attacks") / "data", cheap_passwords=True)
    gw.tenant("acme")
    gw.tenant("other")
    other = gw.mint("other")
    yield World(gw, tenant_admin(gw, "acme", "alice"), platform_admin(gw), other["key"]["id"])
    gw.stop()


def _alice(world: World) -> Console:
    """A new session (each spends one of alice's recovery codes: most tests share one)."""
    return Console.sign_in(world.gw, ORIGIN, world.alice.fields())


@pytest.fixture(scope="module")
def shared(world: World) -> Console:
    return _alice(world)


@pytest.mark.parametrize("page", ["login.html", "keys.html", "tenants.html"])
def test_every_form_posts_so_no_field_ever_lands_in_a_url(page: str) -> None:
    # A form without `method` submits by GET when its script has not run (still loading,
    # blocked, failed): the password and one-time code would go into the URL, the
    # browser's history and every access log on the way.
    body = assets._read(page).body
    forms = _FORM.findall(body)
    assert forms, page
    for form in forms:
        assert b'method="post"' in form, (page, form)


def test_an_answer_holding_a_key_secret_is_never_stored(world: World, shared: Console) -> None:
    console = shared
    created = console.change("POST", "/tenant/v1/keys", {"name": "cached"})
    assert created.status == 201, created.body
    assert created.headers.get("cache-control") == "no-store"
    rotated = console.change("POST", f"/tenant/v1/keys/{created.body['key']['id']}/rotate", {})
    assert rotated.status == 201, rotated.body
    assert rotated.headers.get("cache-control") == "no-store"
    listed = console.get("/tenant/v1/keys")
    assert listed.headers.get("cache-control") == "no-store"


def _cleared(answer_headers: dict[str, str]) -> bool:
    cookie = answer_headers.get("set-cookie", "")
    return cookie.startswith(f"{COOKIE}=;") and "Max-Age=0" in cookie


def test_a_dead_session_cookie_is_cleared_wherever_it_is_refused(world: World) -> None:
    console = _alice(world)
    assert console.change("POST", assets.LOGOUT).status == 200
    for method, path in (
        ("GET", "/console/keys"),  # a page: 303 to sign-in
        ("GET", assets.SESSION),
        ("POST", assets.LOGOUT),  # signing out again
        ("GET", "/tenant/v1/keys"),
    ):
        answer = console.change(method, path) if method == "POST" else console.get(path)
        assert answer.status in (303, 401), (path, answer.status)
        assert _cleared(answer.headers), (path, answer.headers)
    junk = {"Cookie": f"{COOKIE}=bk_not_a_session"}
    answer = world.gw.call("GET", assets.SESSION, None, headers=junk)
    assert answer.status == 401 and _cleared(answer.headers)


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"])
def test_other_methods_change_nothing(world: World, shared: Console, method: str) -> None:
    console = shared
    # Without the CSRF token: a safe method reaches only a route's 405, an unsafe one the 403.
    sent = console.headers(Origin="https://evil.example")
    answer = world.gw.call(method, assets.LOGOUT, None, headers=sent)
    assert answer.status in (403, 404, 405), (method, answer.status)
    assert console.get(assets.SESSION).status == 200


@pytest.mark.parametrize(
    "override", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"]
)
def test_method_override_headers_are_not_honoured(
    world: World, shared: Console, override: str
) -> None:
    console = shared
    made = console.change("POST", "/tenant/v1/keys", {"name": "victim"})
    key_id = made.body["key"]["id"]
    sent = console.headers(**{override: "POST"})
    answer = world.gw.call("GET", f"/tenant/v1/keys/{key_id}/revoke", None, headers=sent)
    assert answer.status in (404, 405)
    answer = world.gw.call("GET", f"{assets.LOGOUT}?_method=POST", None, headers=sent)
    assert answer.status == 405
    keys = {k["id"]: k for k in console.get("/tenant/v1/keys").body["data"]}
    assert keys[key_id]["revoked_at"] is None
    assert console.get(assets.SESSION).status == 200


def test_a_bearer_header_beside_the_cookie_acts_alone(world: World, shared: Console) -> None:
    console = shared
    other_key = world.gw.mint("other", role="tenant_admin")["secret"]
    # Not as alice: the header's principal acts, and the cookie is not even looked at.
    sent = console.headers()
    listed = world.gw.call("GET", "/tenant/v1/keys", other_key, headers=sent)
    assert listed.status == 200, listed.body
    tenants = {k["tenant"] for k in listed.body["data"]}
    assert tenants == {"other"} and world.other_key_id in {k["id"] for k in listed.body["data"]}
    # A garbage header beside a good cookie is refused, never upgraded to the cookie.
    bad = world.gw.call("GET", "/tenant/v1/keys", "bk_nope", headers=sent)
    assert bad.status == 401


def test_a_tenant_session_reaches_neither_the_platform_nor_another_tenant(
    world: World, shared: Console
) -> None:
    console = shared
    assert console.get("/admin/v1/tenants").status == 403
    made = console.change("POST", "/admin/v1/tenants", {"name": "evil", "tier": "shared"})
    assert made.status == 403
    key = world.other_key_id
    assert console.change("POST", f"/tenant/v1/keys/{key}/revoke").status == 404
    assert console.get(f"/tenant/v1/keys/{key}").status in (404, 405)


def test_traversal_under_static_answers_404_with_the_csp(world: World) -> None:
    for path in (
        "/console/static/../../openapi.json",
        "/console/static/%2e%2e/%2e%2e/etc/passwd",
        "/console/static/..%2f..%2fpyproject.toml",
        "/console/static/api.js/",
        "/console/static/",
        "/console/static/__init__.py",
    ):
        answer = world.gw.call("GET", path, None)
        assert answer.status in (303, 401, 404), (path, answer.status)
        assert "content-security-policy" in answer.headers, path
        assert b"import" not in answer.raw and b"root:" not in answer.raw


def test_the_sign_in_api_never_lets_its_token_be_stored(world: World) -> None:
    signed = world.gw.call("POST", "/auth/v1/login", None, world.alice.fields())
    assert signed.status == 200 and signed.body["token"].startswith("bks_")
    assert signed.headers.get("cache-control") == "no-store"


def _audit_text(gw: InProcessGateway, key: str) -> str:
    """The tenant's whole audit log, as its auditor reads it."""
    pages, after = [], -1
    while True:
        listed = gw.call("GET", f"/tenant/v1/audit/events?limit=1000&after={after}", key)
        assert listed.status == 200, listed.body
        pages.append(listed.raw.decode())
        if len(listed.body["data"]) < 1000:
            return "".join(pages)
        after = listed.body["data"][-1]["idx"]


def test_no_session_token_csrf_token_or_key_secret_reaches_logs_or_audit(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    console = _alice(world)
    created = console.change("POST", "/tenant/v1/keys", {"name": "secret-holder"})
    assert created.status == 201
    assert console.change("POST", assets.LOGOUT, **{"X-CSRF-Token": "forged"}).status == 403
    assert console.change("POST", assets.LOGOUT).status == 200
    assert console.get(assets.SESSION).status == 401
    secrets = (console.token, console.csrf, created.body["secret"])
    audit = _audit_text(world.gw, world.gw.key("acme", role="tenant_auditor"))
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in audit


def test_console_sign_out_ends_the_session_on_another_replica(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'bulkhead.db'}"
    first = GatewayThread(tmp_path / "data", None).start()
    second = GatewayThread(tmp_path / "data", url).start()
    try:
        console = Console.sign_in(first, first.url, platform_admin(first).fields())
        there = Console(second, second.url, console.token)
        assert there.get(assets.SESSION).status == 200
        assert console.change("POST", assets.LOGOUT).status == 200
        started = time.monotonic()
        while there.get(assets.SESSION).status != 401:
            assert time.monotonic() - started < 3.0, "still signed in on the other replica"
            time.sleep(0.05)
        assert there.get("/admin/v1/tenants").status == 401
    finally:
        second.stop()
        first.stop()


def test_the_sign_in_redirect_goes_nowhere_it_is_told(world: World) -> None:
    for query in ("next=https://evil.example", "next=//evil.example", "redirect=/\\evil.example"):
        answer = world.gw.call("GET", f"/console/keys?{query}", None)
        assert answer.status == 303 and answer.headers["location"] == "/console/login"
    login = world.gw.call("GET", "/console/login?next=https://evil.example", None)
    assert login.status == 200 and b"evil" not in login.raw

"""The web console through the whole chain: its cookie, CSRF, headers, sign-out and isolation.

In process (`InProcessGateway`: SQLite, no socket); the browser itself drives
the console in `tests/browser/test_console_browser.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bulkhead.console import assets
from bulkhead.gateway.headers import CSP
from bulkhead.identity.sessions import TTL_S
from bulkhead.web.cookies import COOKIE, csrf_token
from tests.support.console import Console, Person, platform_admin, tenant_admin
from tests.support.inprocess import HOST, InProcessGateway

ORIGIN = f"http://{HOST}"


@dataclass
class World:
    gw: InProcessGateway
    alice: Person  # tenant admin of `acme`
    root: Person  # the platform admin
    other_key_id: str  # a key of another tenant


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    gw = InProcessGateway(tmp_path_factory.mktemp("console") / "data", cheap_passwords=True)
    gw.tenant("acme")
    gw.tenant("other")
    other = gw.mint("other")
    yield World(gw, tenant_admin(gw, "acme", "alice"), platform_admin(gw), other["key"]["id"])
    gw.stop()


def alice(world: World) -> Console:
    """A new session of alice's (each spends a recovery code: see `shared` for most tests)."""
    return Console.sign_in(world.gw, ORIGIN, world.alice.fields())


@pytest.fixture(scope="module")
def shared(world: World) -> Console:
    """One session of alice's for the tests that leave it alive."""
    return alice(world)


def test_sign_in_with_password_and_totp_sets_only_a_strict_cookie(world: World) -> None:
    fields = world.alice.fields(code=world.alice.next_code())
    signed = world.gw.call("POST", "/console/api/login", None, fields, headers={"Origin": ORIGIN})
    assert signed.status == 200, signed.body
    cookie = signed.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    token, *attributes = rest.split("; ")
    assert name == COOKIE and token.startswith("bks_")
    max_age = int(attributes[0].removeprefix("Max-Age="))
    assert 0 < max_age <= TTL_S
    assert attributes[1:] == ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"]
    # The token is in the cookie alone: no script of the page can read it.
    assert "bks_" not in signed.raw.decode() and signed.body["role"] == "tenant_admin"
    assert signed.body["mfa"] is True


def test_a_wrong_code_signs_no_one_in(world: World) -> None:
    fields = {**world.alice.fields(code="000000")}
    refused = world.gw.call("POST", "/console/api/login", None, fields, headers={"Origin": ORIGIN})
    assert refused.status == 401 and "set-cookie" not in refused.headers


def test_the_session_answer_gives_the_csrf_token_bound_to_the_session(world: World) -> None:
    one, two = alice(world), alice(world)
    assert one.csrf == csrf_token(one.token) and one.csrf != two.csrf
    me = one.get("/console/api/session").body
    assert (me["principal"], me["tenant"], me["role"]) == ("alice", "acme", "tenant_admin")


def _console_paths() -> list[str]:
    return [*assets.PAGES, assets.SIGN_IN_PAGE, assets.SESSION, "/console/nope"] + [
        assets.STATIC + name for name in assets.FILES
    ]


@pytest.mark.parametrize("path", _console_paths())
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_every_console_answer_carries_the_strict_headers(
    world: World, shared: Console, path: str, signed_in: bool
) -> None:
    headers = shared.headers() if signed_in else {}
    for method in ("GET", "POST"):
        answer = world.gw.call(method, path, None, headers=headers)
        assert answer.headers["content-security-policy"] == CSP, (method, path)
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_csp_is_the_strict_one() -> None:
    assert CSP == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def test_pages_need_a_session_and_send_people_to_sign_in(world: World, shared: Console) -> None:
    for path in assets.PAGES:
        answer = world.gw.call("GET", path, None)
        assert answer.status == 303 and answer.headers["location"] == "/console/login"
    assert world.gw.call("GET", assets.SESSION, None).status == 401  # an API: no redirect
    page = shared.get("/console/keys")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    public = world.gw.call("GET", "/console/login", None)
    assert public.status == 200 and b"sign-in" in public.raw


def test_the_cookie_reads_and_changes_through_the_apis(world: World, shared: Console) -> None:
    console = shared
    listed = console.get("/tenant/v1/keys")
    assert listed.status == 200, listed.body
    created = console.change("POST", "/tenant/v1/keys", {"name": "from-console"})
    assert created.status == 201, created.body
    assert created.body["secret"].startswith("bk_")
    key_id = created.body["key"]["id"]
    revoked = console.change("POST", f"/tenant/v1/keys/{key_id}/revoke")
    assert revoked.status == 200 and revoked.body["revoked_at"]


def _key_names(console: Console) -> list[str]:
    return [k["name"] for k in console.get("/tenant/v1/keys").body["data"]]


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"X-CSRF-Token": ""}, "missing token"),
        ({"X-CSRF-Token": "x" * 43}, "wrong token"),
        ({"X-CSRF-Token": csrf_token("bks_another_session")}, "another session's token"),
        ({"Origin": "https://evil.example"}, "cross-origin Origin"),
        ({"Origin": "null"}, "opaque Origin"),
        ({"Origin": "http://testserver.evil.example"}, "look-alike Origin"),
        ({"Origin": "", "Sec-Fetch-Site": "cross-site"}, "cross-site fetch"),
        ({"Sec-Fetch-Site": "same-site"}, "same-site sibling"),
        ({"Origin": ""}, "no Origin nor Sec-Fetch-Site"),
    ],
)
def test_a_change_with_the_cookie_needs_the_token_and_the_own_origin(
    world: World, shared: Console, headers: dict[str, str], detail: str
) -> None:
    console = shared
    name = f"forged-{detail}"
    refused = console.change("POST", "/tenant/v1/keys", {"name": name}, **headers)
    assert refused.status == 403, (detail, refused.body)
    assert refused.body["error"]["code"] == "csrf_failed"
    assert name not in _key_names(console)
    # Sign-out is a change too: the session survives a forged one.
    assert console.change("POST", assets.LOGOUT, **headers).status == 403
    assert console.get(assets.SESSION).status == 200


def test_same_origin_with_sec_fetch_site_passes(world: World, shared: Console) -> None:
    console = shared
    made = console.change(
        "POST", "/tenant/v1/keys", {"name": "s"}, **{"Sec-Fetch-Site": "same-origin"}
    )
    assert made.status == 201, made.body


def test_a_forged_sign_in_from_another_site_is_refused(world: World) -> None:
    fields = world.alice.fields()
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {}):
        refused = world.gw.call("POST", assets.LOGIN, None, fields, headers=headers)
        assert refused.status == 403 and refused.body["error"]["code"] == "csrf_failed"
        assert "set-cookie" not in refused.headers


def test_the_cookie_never_authenticates_the_model_api(world: World, shared: Console) -> None:
    console = shared
    for path in ("/v1/models", "/openapi.json"):
        answer = world.gw.call("GET", path, None, headers=console.headers())
        assert answer.status == 401, path
    chat = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]}
    answer = console.change("POST", "/v1/chat/completions", chat)
    assert answer.status == 401 and answer.body["error"]["code"] == "invalid_api_key"


def test_a_bearer_request_is_judged_by_its_header_alone(world: World) -> None:
    gw = world.gw
    key = gw.key("acme", role="tenant_admin")
    # No CSRF token or Origin needed, and a (stale or foreign) cookie beside it is ignored.
    headers = {"Cookie": f"{COOKIE}=bks_junk", "Origin": "https://evil.example"}
    made = gw.call("POST", "/tenant/v1/keys", key, {"name": "bearer"}, headers=headers)
    assert made.status == 201, made.body
    assert gw.call("GET", "/v1/models", key, headers=headers).status == 200


def test_a_key_in_the_cookie_is_refused(world: World) -> None:
    key = world.gw.key("acme", role="tenant_admin")
    answer = world.gw.call("GET", "/tenant/v1/keys", None, headers={"Cookie": f"{COOKIE}={key}"})
    assert answer.status == 401


def test_sign_out_revokes_the_session_on_the_server(world: World) -> None:
    console = alice(world)
    out = console.change("POST", assets.LOGOUT)
    assert out.status == 200 and out.body == {"revoked": True}
    assert out.headers["set-cookie"].startswith(f"{COOKIE}=; Max-Age=0; Path=/")
    # The old cookie (kept by a copy, say) is dead everywhere, as a cookie or a bearer token.
    after = console.get("/tenant/v1/keys")
    assert after.status == 401 and after.body["error"]["code"] == "session_expired"
    assert world.gw.call("GET", "/tenant/v1/keys", console.token).status == 401
    assert console.get("/console/keys").status == 303


def test_another_tenants_key_answers_not_found(world: World, shared: Console) -> None:
    console = shared
    for action in ("revoke", "rotate"):
        answer = console.change("POST", f"/tenant/v1/keys/{world.other_key_id}/{action}", {})
        assert answer.status == 404, (action, answer.body)
    assert world.other_key_id not in [k["id"] for k in console.get("/tenant/v1/keys").body["data"]]
    assert console.get("/admin/v1/tenants").status == 403  # the platform's API: not hers


def test_a_platform_admin_manages_tenants_through_the_console(world: World) -> None:
    root = Console.sign_in(world.gw, ORIGIN, world.root.fields())
    made = root.change("POST", "/admin/v1/tenants", {"name": "from-console"})
    assert made.status in (200, 201), made.body
    suspended = root.change("PATCH", "/admin/v1/tenants/from-console", {"status": "suspended"})
    assert suspended.status == 200 and suspended.body["status"] == "suspended"
    names = [t["name"] for t in root.get("/admin/v1/tenants").body["data"]]
    assert "from-console" in names
    assert root.get("/tenant/v1/keys").status == 403  # a platform session has no tenant API


def _actions(gw: InProcessGateway, key: str) -> set[str]:
    """Every action in the tenant's view of the audit log, page by page."""
    actions: set[str] = set()
    after = -1
    while True:
        listed = gw.call("GET", f"/tenant/v1/audit/events?limit=1000&after={after}", key)
        assert listed.status == 200, listed.body
        page = listed.body["data"]
        actions |= {str(e.get("action")) for e in page}
        if len(page) < 1000:  # Each listing is an event too: stop at the end, not when empty.
            return actions
        after = page[-1]["idx"]


def test_console_requests_are_audited(world: World, shared: Console) -> None:
    assert shared.get("/console/principals").status == 200
    assert shared.change("POST", assets.LOGOUT, **{"X-CSRF-Token": "forged"}).status == 403
    actions = _actions(world.gw, world.gw.key("acme", role="tenant_auditor"))
    expected = {"auth:login", "console:session.get", "console:pages.get", "console:session.delete"}
    assert expected <= actions

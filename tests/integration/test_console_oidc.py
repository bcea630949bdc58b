"""The console's sign-in through a tenant's OIDC provider, against a real one on 127.0.0.1.

The provider is panva/oidc-provider (tests/oidc_provider, `make services`), reached
through the egress guard with the operator's allowance `BULKHEAD_IDP_ALLOW_CIDRS` for
127.0.0.1 (without it the gateway refuses to reach a loopback IdP, tested below and in
tests/unit/console/test_oidc_egress.py).  Tokens the provider would never issue (wrong
nonce, issuer, algorithm, expired) are tested in tests/unit/identity/test_oidc_login.py.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from bulkhead.web.cookies import COOKIE, PRE_AUTH_COOKIE
from tests.support.gateway import GatewayThread, http
from tests.support.oidc_provider import Browser, OidcProvider

CALLBACK = "/console/login/oidc/callback"
CLIENT = "acme-console"


@dataclass
class World:
    gw: GatewayThread
    idp: OidcProvider


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    gw = GatewayThread(
        tmp_path_factory.mktemp("console-oidc") / "data",
        None,
        env={"BULKHEAD_IDP_ALLOW_CIDRS": "127.0.0.1/32"},
    ).start()
    callback = [gw.url + CALLBACK]
    idp = OidcProvider(
        clients=[
            {"client_id": CLIENT, "redirect_uris": callback},
            {"client_id": "other-client", "redirect_uris": callback},
        ],
        accounts={
            "alice": {"roles": ["tenant_admin"], "amr": ["pwd", "otp"]},
            "bob": {"roles": ["end_user"]},
            "carol": {"roles": ["tenant_admin"]},
            "mallory": {"roles": ["tenant_admin"]},
            # Knowledge factors only, or a phone: no second factor (`domain.multi_factor`).
            "pat": {"roles": ["tenant_admin"], "amr": ["pin"]},
            "dan": {"roles": ["tenant_admin"], "amr": ["pwd", "pin"]},
            "sam": {"roles": ["tenant_admin"], "amr": ["pwd", "sms"]},
        },
    )
    try:
        for tenant in ("acme", "beta"):
            gw.tenant(tenant)
        for name, roles in (
            ("alice", ["tenant_admin"]),
            ("bob", ["end_user"]),
            ("carol", ["tenant_admin"]),
            ("pat", ["tenant_admin"]),
            ("dan", ["tenant_admin"]),
            ("sam", ["tenant_admin"]),
        ):
            gw.must("POST", "/admin/v1/tenants/acme/principals", {"name": name, "roles": roles})
        gw.must(
            "POST",
            "/admin/v1/tenants/beta/principals",
            {"name": "mallory", "roles": ["tenant_admin"]},
        )
        register(gw, idp)
        yield World(gw, idp)
    finally:
        idp.stop()
        gw.stop()


def register(gw: GatewayThread, idp: OidcProvider) -> None:
    body = {"issuer": idp.issuer, "audience": CLIENT, "jwks_url": idp.issuer + "/jwks"}
    gw.must("PUT", "/admin/v1/tenants/acme/idp", body)


def start(world: World, browser: Browser, tenant: str = "acme") -> str:
    """Start a sign-in; the IdP's authorization URL the gateway sends the browser to."""
    answer = browser.go(f"{world.gw.url}/console/login/oidc?tenant={tenant}")
    assert answer.status == 302, answer.body
    return answer.location


def refused(answer: object, status: int = 401) -> dict[str, str]:
    got = answer.status, answer.json()  # type: ignore[attr-defined]
    assert got[0] == status, got
    error: dict[str, str] = got[1]["error"]
    return error


def test_a_tenant_admin_signs_in_through_the_provider(world: World) -> None:
    browser = Browser()
    answer = browser.go(f"{world.gw.url}/console/login/oidc?tenant=acme")
    assert answer.status == 302 and answer.headers["cache-control"] == "no-store"
    pre_auth = answer.headers["set-cookie"]
    assert pre_auth.startswith(PRE_AUTH_COOKIE + "=")
    for attribute in ("Max-Age=600", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert attribute in pre_auth
    url = urlsplit(answer.location)
    assert f"{url.scheme}://{url.netloc}" == world.idp.issuer and url.path == "/auth"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["response_type"] == "code" and query["client_id"] == CLIENT
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == world.gw.url + CALLBACK
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    assert query["state"] not in pre_auth  # the cookie is not the state in clear

    landed = browser.go(browser.authorize(answer.location, "alice"))
    assert landed.status == 200, landed.body
    assert b'url=/console"' in landed.body and landed.headers["cache-control"] == "no-store"
    session = browser.cookie(COOKIE)
    assert session is not None and session.startswith("bks_")
    assert browser.cookie(PRE_AUTH_COOKIE) is None  # spent: cleared
    me = http(
        "GET", world.gw.url + "/console/api/session", headers={"cookie": f"{COOKIE}={session}"}
    )
    assert me.status == 200, me.body
    assert (me.body["principal"], me.body["tenant"], me.body["role"]) == (
        "alice",
        "acme",
        "tenant_admin",
    )
    events = [e for e in world.gw.audit_events() if e.get("action") == "auth:login.oidc"]
    assert events and events[-1]["status"] == 200
    assert str(events[-1]["credential_id"]).startswith("session:")
    assert session not in str(events)


def test_an_end_user_gets_the_role_its_principal_holds(world: World) -> None:
    browser = Browser()
    landed = browser.go(browser.authorize(start(world, browser), "bob"))
    assert landed.status == 200
    me = http(
        "GET",
        world.gw.url + "/console/api/session",
        headers={"cookie": f"{COOKIE}={browser.cookie(COOKIE)}"},
    )
    assert me.body["role"] == "end_user"


def test_a_replayed_state_is_refused(world: World) -> None:
    browser = Browser()
    start(world, browser)
    kept = browser.cookie(PRE_AUTH_COOKIE)
    assert kept is not None
    callback = browser.authorize(start(world, browser), "alice")
    kept = browser.cookie(PRE_AUTH_COOKIE)
    assert kept is not None
    assert browser.go(callback).status == 200
    browser.set_cookie(PRE_AUTH_COOKIE, kept, like=COOKIE)  # the attacker kept the cookie
    error = refused(browser.go(callback))
    assert error["code"] == "oidc_sign_in_failed" and "start again" in error["message"]


def test_a_callback_for_another_tenant_is_refused(world: World) -> None:
    browser = Browser()
    callback = browser.authorize(start(world, browser), "alice")
    error = refused(browser.go(callback + "&tenant=beta"))
    assert "another tenant" in error["message"]
    assert refused(browser.go(callback + "&tenant=nowhere"))["code"] == "oidc_sign_in_failed"


def test_a_code_issued_to_another_client_is_refused(world: World) -> None:
    # The attacker's own code, for another client of the same provider.
    attacker = Browser()
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    params = {
        "response_type": "code",
        "client_id": "other-client",
        "redirect_uri": world.gw.url + CALLBACK,
        "scope": "openid",
        "state": "s" * 43,
        "nonce": "n" * 43,
        "code_challenge": base64.urlsafe_b64encode(digest).decode().rstrip("="),
        "code_challenge_method": "S256",
    }
    other = attacker.authorize(f"{world.idp.issuer}/auth?{urlencode(params)}", "alice")
    code = parse_qs(urlsplit(other).query)["code"][0]
    # Fed to a flow of acme's, with that flow's state and cookie.
    browser = Browser()
    state = parse_qs(urlsplit(start(world, browser)).query)["state"][0]
    sent = urlencode({"code": code, "state": state, "iss": world.idp.issuer})
    answer = browser.go(f"{world.gw.url}{CALLBACK}?{sent}")
    assert "refused the sign-in" in refused(answer)["message"]
    assert browser.cookie(COOKIE) is None


def test_a_wrong_state_an_answer_from_another_issuer_and_no_cookie_are_refused(
    world: World,
) -> None:
    browser = Browser()
    callback = browser.authorize(start(world, browser), "alice")
    wrong_state = callback.replace("state=", "state=x")
    assert refused(browser.go(wrong_state))["code"] == "oidc_sign_in_failed"
    wrong_iss = callback.replace("iss=", "iss=https%3A%2F%2Fevil.test")
    assert "another identity provider" in refused(browser.go(wrong_iss))["message"]
    assert refused(Browser().go(callback))["code"] == "oidc_sign_in_failed"
    state = parse_qs(urlsplit(start(world, browser)).query)["state"][0]
    said = {"state": state, "error": "access_denied\u202e\n<b>", "iss": world.idp.issuer}
    denied = urlencode(said)
    error = refused(browser.go(f"{world.gw.url}{CALLBACK}?{denied}"))
    assert error["message"] == "Your identity provider refused the sign-in (access_denied??<b>)."
    forged = Browser()
    forged.go(f"{world.gw.url}/console/login/oidc?tenant=acme")
    value = forged.cookie(PRE_AUTH_COOKIE)
    assert value is not None
    payload, _ = value.split(".")
    forged.set_cookie(PRE_AUTH_COOKIE, payload + "." + "A" * 43, like=PRE_AUTH_COOKIE)
    assert refused(forged.go(callback))["code"] == "oidc_sign_in_failed"


def test_an_answer_without_the_iss_the_provider_promises_is_refused(world: World) -> None:
    # RFC 9207: oidc-provider advertises `authorization_response_iss_parameter_supported`,
    # so an answer without `iss` did not come from it (an IdP mix-up): refused, not trusted.
    browser = Browser()
    callback = urlsplit(browser.authorize(start(world, browser), "alice"))
    query = {k: v[0] for k, v in parse_qs(callback.query).items()}
    assert query.pop("iss") == world.idp.issuer
    error = refused(browser.go(f"{world.gw.url}{CALLBACK}?{urlencode(query)}"))
    assert "another identity provider" in error["message"] and browser.cookie(COOKIE) is None


def test_a_sign_in_another_site_starts_is_refused(world: World) -> None:
    # Login CSRF: a page elsewhere (or a mailed link) navigating a browser to the start must
    # not sign it in (the IdP could answer at once, as anyone's).  The sign-in page's goes on.
    url = f"{world.gw.url}/console/login/oidc?tenant=acme"
    for site in ("cross-site", "same-site", "none"):
        browser = Browser()
        answer = browser.go(url, headers={"Sec-Fetch-Site": site})
        assert refused(answer, 403)["code"] == "oidc_sign_in_failed"
        assert browser.cookie(PRE_AUTH_COOKIE) is None
    assert Browser().go(url, headers={"Sec-Fetch-Site": "same-origin"}).status == 302


def test_an_identity_not_provisioned_in_the_tenant_is_refused(world: World) -> None:
    # mallory is beta's principal, not acme's: acme's IdP cannot sign her in to acme.
    browser = Browser()
    error = refused(browser.go(browser.authorize(start(world, browser), "mallory")))
    assert "not provisioned" in error["message"] and browser.cookie(COOKIE) is None
    events = [e for e in world.gw.audit_events() if e.get("action") == "auth:login.oidc"]
    assert events[-1]["status"] == 401


def test_an_admin_without_a_second_factor_at_the_provider_is_refused(world: World) -> None:
    browser = Browser()
    error = refused(browser.go(browser.authorize(start(world, browser), "carol")))
    assert error["code"] == "mfa_required" and browser.cookie(COOKIE) is None


def test_a_pin_or_a_phone_is_no_second_factor(world: World) -> None:
    for who in ("pat", "dan", "sam"):
        browser = Browser()
        error = refused(browser.go(browser.authorize(start(world, browser), who)))
        assert error["code"] == "mfa_required" and browser.cookie(COOKIE) is None, who


def test_an_admin_without_a_second_factor_gets_no_dead_session(world: World) -> None:
    # An IdP that does not require MFA for admins: the console still refuses an admin session
    # without one on every request, so the sign-in must not hand out (and audit) one.
    body = {"issuer": world.idp.issuer, "audience": CLIENT, "jwks_url": world.idp.issuer + "/jwks"}
    world.gw.hold("admin:tenants.idp.set", "acme", again=True)
    world.gw.must("PUT", "/admin/v1/tenants/acme/idp", {**body, "require_mfa_for_admin": False})
    try:
        browser = Browser()
        error = refused(browser.go(browser.authorize(start(world, browser), "carol")))
        assert error["code"] == "mfa_required" and browser.cookie(COOKIE) is None
    finally:
        world.gw.hold("admin:tenants.idp.set", "acme", again=True)
        register(world.gw, world.idp)


def test_unknown_tenants_and_bad_queries_are_clear_4xx(world: World) -> None:
    for query in ("", "?tenant=", "?tenant=nowhere", "?tenant=beta", "?tenant=a&tenant=b"):
        answer = Browser().go(f"{world.gw.url}/console/login/oidc{query}")
        assert answer.status in (400, 404), (query, answer.status)
        assert answer.json()["error"]["message"]
    assert Browser().go(f"{world.gw.url}{CALLBACK}?code=x&state=y").status == 401


# A confidential client: the IdP wants a client secret at its token endpoint ------------------

SECRET = "conf-client-secret-" + "s" * 24


@pytest.fixture(scope="module")
def confidential(world: World) -> Iterator[OidcProvider]:
    idp = OidcProvider(
        clients=[
            {
                "client_id": "gamma-console",
                "client_secret": SECRET,
                "token_endpoint_auth_method": "client_secret_basic",
                "redirect_uris": [world.gw.url + CALLBACK],
            }
        ],
        accounts={"bob": {"roles": ["end_user"]}},
    )
    world.gw.tenant("gamma")
    world.gw.must(
        "POST", "/admin/v1/tenants/gamma/principals", {"name": "bob", "roles": ["end_user"]}
    )
    yield idp
    idp.stop()


def test_a_confidential_client_sends_its_sealed_secret(
    world: World, confidential: OidcProvider
) -> None:
    base = {
        "issuer": confidential.issuer,
        "audience": "gamma-console",
        "jwks_url": confidential.issuer + "/jwks",
    }
    world.gw.must("PUT", "/admin/v1/tenants/gamma/idp", base)
    browser = Browser()
    answer = browser.go(browser.authorize(start(world, browser, "gamma"), "bob"))
    assert "refused the sign-in" in refused(answer)["message"]  # no secret: invalid_client

    world.gw.hold("admin:tenants.idp.set", "gamma")
    shown = world.gw.must("PUT", "/admin/v1/tenants/gamma/idp", {**base, "client_secret": SECRET})
    assert shown["client_secret_set"] is True and SECRET not in str(shown)
    assert world.gw.must("GET", "/admin/v1/tenants/gamma/idp")["client_secret_set"] is True
    browser = Browser()
    landed = browser.go(browser.authorize(start(world, browser, "gamma"), "bob"))
    assert landed.status == 200, landed.body
    assert browser.cookie(COOKIE) is not None
    assert SECRET not in str(world.gw.audit_events())

    # Replacing the IdP's other settings without naming the secret keeps it: sign-in still works.
    world.gw.hold("admin:tenants.idp.set", "gamma", again=True)
    kept = world.gw.must("PUT", "/admin/v1/tenants/gamma/idp", {**base, "claims": {}})
    assert kept["client_secret_set"] is True
    browser = Browser()
    assert browser.go(browser.authorize(start(world, browser, "gamma"), "bob")).status == 200
    on_disk = [p for p in world.gw.settings.data_dir.rglob("*") if p.is_file()]
    assert on_disk and not any(SECRET.encode() in p.read_bytes() for p in on_disk)

    # The keyring finds the sealed secret: a KEK rotation re-wraps it, the old version retires.
    old = world.gw.must("GET", "/admin/v1/tenants/gamma/kms")["primary_version"]
    world.gw.grant("admin:kms.retire", "gamma")
    busy = world.gw.admin("POST", f"/admin/v1/tenants/gamma/kms/versions/{old}/retire")
    assert busy.status == 409  # the IdP secret (at least) is still under it
    world.gw.must("POST", "/admin/v1/tenants/gamma/kms/rotate")
    world.gw.must("POST", f"/admin/v1/tenants/gamma/kms/versions/{old}/retire")
    browser = Browser()
    assert browser.go(browser.authorize(start(world, browser, "gamma"), "bob")).status == 200


def test_an_issuer_at_an_internal_address_or_not_http_is_never_fetched(world: World) -> None:
    world.gw.tenant("delta")
    for n, issuer in enumerate(
        ("https://169.254.169.254/x", "https://10.0.0.1", "file:///etc/passwd")
    ):
        if n:
            world.gw.hold("admin:tenants.idp.set", "delta", again=True)
        body = {"issuer": issuer, "audience": "delta", "jwks_url": world.idp.issuer + "/jwks"}
        world.gw.must("PUT", "/admin/v1/tenants/delta/idp", body)
        error = refused(Browser().go(f"{world.gw.url}/console/login/oidc?tenant=delta"))
        assert error["code"] == "oidc_sign_in_failed", (issuer, error)
        expected = "not set up" if issuer.startswith("file") else "could not be reached"
        assert expected in error["message"], (issuer, error)

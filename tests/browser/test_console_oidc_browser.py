"""Console sign-in through a tenant's OIDC provider, in Debian's Chromium, end to end.

A tenant admin types the tenant on the sign-in page, is sent to the real provider
(panva/oidc-provider on 127.0.0.1, `tests/support/oidc_provider.py`), signs in on its
login page, consents, and lands in the console signed in, with the same session cookie
the password sign-in gives and no pre-auth cookie left.  Every page is screenshotted
under the test's temporary directory (printed with `pytest -s`), with the browser
tests' shared set-up (`tests/browser/conftest.py`, `tests/support/browser.py`).  The
gateway's pages must log no CSP violation or script error (the provider's own pages are
not ours: they fetch a web font, which fails offline).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

from bulkhead.web.cookies import COOKIE, PRE_AUTH_COOKIE
from tests.support.browser import open_tab
from tests.support.gateway import GatewayThread
from tests.support.oidc_provider import OidcProvider

pytestmark = pytest.mark.browser
CLIENT = "acme-console"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayThread, str]]:
    gw = GatewayThread(
        tmp_path_factory.mktemp("browser-oidc") / "data",
        None,
        env={"BULKHEAD_IDP_ALLOW_CIDRS": "127.0.0.1/32"},
    ).start()
    idp = OidcProvider(
        clients=[{"client_id": CLIENT, "redirect_uris": [gw.url + "/console/login/oidc/callback"]}],
        accounts={"alice": {"roles": ["tenant_admin"], "amr": ["pwd", "otp"]}},
    )
    try:
        gw.tenant("acme")
        gw.must(
            "POST",
            "/admin/v1/tenants/acme/principals",
            {"name": "alice", "roles": ["tenant_admin"]},
        )
        body = {"issuer": idp.issuer, "audience": CLIENT, "jwks_url": idp.issuer + "/jwks"}
        gw.must("PUT", "/admin/v1/tenants/acme/idp", body)
        yield gw, idp.issuer
    finally:
        idp.stop()
        gw.stop()


def test_a_tenant_admin_signs_in_through_the_tenants_provider(
    world: tuple[GatewayThread, str], browser: Browser, tmp_path: Path
) -> None:
    gw, issuer = world

    def ours(message: ConsoleMessage) -> str | None:
        where = message.location["url"]
        return f"{message.text} at {where}" if where.startswith(gw.url) else None

    opened = open_tab(browser, tmp_path / "screenshots", noted=ours, page_errors=False)
    tab, problems, shots = opened.page, opened.problems, opened.shots
    try:
        tab.goto(gw.url + "/console/login")
        tab.fill("#sign-in-oidc input[name=tenant]", "acme")
        shots.take(tab, "sign-in")
        tab.click("#sign-in-oidc button[type=submit]")
        expect(tab.locator("input[name=login]")).to_be_visible()
        assert tab.url.startswith(issuer + "/interaction/")
        shots.take(tab, "provider-login")
        tab.fill("input[name=login]", "alice")
        tab.fill("input[name=password]", "anything")
        tab.click("button[type=submit]")
        expect(tab.locator("input[name=prompt][value=consent]")).to_be_attached()
        shots.take(tab, "provider-consent")
        tab.click("button[type=submit]")
        expect(tab).to_have_url(gw.url + "/console")
        expect(tab.locator("dl.facts")).to_contain_text("alice")
        shots.take(tab, "overview")
        cookies = {c["name"]: c for c in tab.context.cookies(gw.url)}
        session = cookies[COOKIE]
        assert (session["httpOnly"], session["secure"], session["sameSite"]) == (
            True,
            True,
            "Strict",
        )
        assert PRE_AUTH_COOKIE not in cookies
        assert COOKIE not in tab.evaluate("document.cookie")
    finally:
        print(f"\nscreenshots: {shots.folder}")
        tab.context.close()
    assert problems == [], problems
    assert len(shots.taken) == 4

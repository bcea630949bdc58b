"""The web console in a real browser: Debian's Chromium, headless, driven by Playwright.

A tenant admin signs in with a password and TOTP, creates a key and sees its
secret once, reloads and no longer sees it, revokes it and signs out; a
platform admin creates and suspends a tenant.  Every page is screenshotted
under the test's temporary directory (the path is printed: `pytest -s`).
The page must run with no Content-Security-Policy violation and no script
error, and must not be able to read its session cookie.

The browser is the system's Chromium (`make services`: Debian package
`chromium`), passed to Playwright as `executable_path`; Playwright's own
browser downloads are never used.  Without it the test fails, it does not
skip.  The set-up (gateway, browser, tabs, the sign-in page filled in) is the
browser tests' own: `tests/browser/conftest.py`, `tests/support/browser.py`.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from bulkhead.web.cookies import COOKIE
from tests.support.browser import Shots, sign_in
from tests.support.console import platform_admin, tenant_admin
from tests.support.gateway import GatewayThread, http

pytestmark = pytest.mark.browser


def test_a_tenant_admin_creates_sees_once_and_revokes_a_key(
    gateway: GatewayThread, page: tuple[Page, list[str], Shots]
) -> None:
    tab, problems, shots = page
    gateway.tenant("acme")
    sign_in(tab, gateway, tenant_admin(gateway, "acme", "alice"), shots)
    # The session cookie is the browser's alone: strict, and out of the page's reach.
    cookie = next(c for c in tab.context.cookies() if c["name"] == COOKIE)
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert COOKIE not in tab.evaluate("document.cookie")

    tab.click("a[href='/console/keys']")
    expect(tab.locator("#keys")).to_be_visible()
    shots.take(tab, "keys")
    tab.fill("#create-key input[name=name]", "from-the-browser")
    tab.select_option("#create-key select[name=role]", "end_user")
    tab.click("#create-key button[type=submit]")
    secret = tab.locator("#secret-value").inner_text()
    assert secret.startswith("bk_")
    expect(tab.locator("#keys")).to_contain_text("from-the-browser")
    shots.take(tab, "key-created-secret-shown-once")
    assert http("GET", gateway.url + "/v1/models", secret).status == 200

    tab.reload()
    expect(tab.locator("#keys")).to_contain_text("from-the-browser")
    assert tab.locator("#secret-value").count() == 0
    assert secret not in tab.content()
    shots.take(tab, "keys-after-reload")

    row = tab.locator("tr", has_text="from-the-browser")
    row.locator("button.danger").click()
    expect(row).to_contain_text("revoked")
    shots.take(tab, "key-revoked")
    assert http("GET", gateway.url + "/v1/models", secret).status == 401

    tab.click("a[href='/console/principals']")
    expect(tab.locator("#principals")).to_contain_text("alice")
    shots.take(tab, "principals")

    tab.click("#sign-out")
    expect(tab).to_have_url(gateway.url + "/console/login")
    tab.goto(gateway.url + "/console/keys")
    expect(tab).to_have_url(gateway.url + "/console/login")  # the session is gone
    assert problems == [], problems
    assert len(shots.taken) == 7


def test_a_platform_admin_creates_and_suspends_a_tenant(
    gateway: GatewayThread, page: tuple[Page, list[str], Shots]
) -> None:
    tab, problems, shots = page
    sign_in(tab, gateway, platform_admin(gateway), shots)
    tab.click("a[href='/console/tenants']")
    tab.fill("#create-tenant input[name=name]", "made-in-browser")
    tab.click("#create-tenant button[type=submit]")
    row = tab.locator("tr", has_text="made-in-browser")
    expect(row).to_contain_text("active")
    shots.take(tab, "tenants")
    row.locator("button.danger").click()
    expect(row).to_contain_text("suspended")
    shots.take(tab, "tenant-suspended")
    assert problems == [], problems

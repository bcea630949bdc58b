"""The platform's own principals, the MIG planner and the platform auditor, in a real browser.

- A platform admin on the platform principals page: creates an auditor (its enrolment
  secret shown once, gone after navigating away and back), who then enrols with it; once
  the platform has a second admin, a role change and a re-enable are refused for want of a
  grant and link to the access request form, filled in with what the API named; disables,
  enables under a grant, deletes.  On the capacity page it plans a MIG layout, and sees
  why an impossible one has none.
- A platform auditor, made through the API, signs in with password and TOTP, sees only
  the pages of its role in the menu, verifies an audit event green, and is refused a plan.

Shares the fixtures of `tests/browser/conftest.py`; screenshots go to each test's folder.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.support.browser import Tab, sign_in
from tests.support.console import enrol_operator, platform_admin, platform_auditor, second_admin
from tests.support.gateway import GatewayThread

pytestmark = pytest.mark.browser

AUDITOR_MENU = [
    "/console/audit",
    "/console/access",
    "/console/key-status",
    "/console/usage",
    "/console/usage-table",
]


def test_a_platform_admin_manages_platform_principals_and_plans_mig(
    gateway: GatewayThread,
    tabs: Callable[[str], Tab],
) -> None:
    tab = tabs("platform-admin")
    page, shots = tab.page, tab.shots
    sign_in(page, gateway, platform_admin(gateway), shots)

    page.click("a[href='/console/platform-principals']")
    expect(page.locator("#principals tr", has_text="admin")).to_contain_text("platform_admin")
    page.fill("#create-principal input[name=name]", "audra")
    page.select_option("#create-principal select[name=roles]", "platform_auditor")
    page.click("#create-principal button[type=submit]")  # the sole admin: no grant needed
    enrolment = page.locator("#secret-value").inner_text()
    assert len(enrolment) > 20
    audra = page.locator("#principals tr", has_text="audra")
    expect(audra).to_contain_text("no (secret good until")
    shots.take(page, "platform-principal-created")
    page.click("a[href='/console/tenants']")  # leave, and come back: the secret is gone
    page.go_back()
    expect(page.locator("#principals")).to_contain_text("audra")
    assert page.locator("#secret-value").count() == 0 and enrolment not in page.content()
    enrol_operator(gateway, "audra", enrolment)
    page.reload()
    expect(audra).to_contain_text("yes")

    second_admin(gateway, "bob")  # two admins: adding one or letting one back is a grant
    page.reload()
    page.select_option("select[aria-label='Roles of audra']", "platform_admin")
    expect(page.locator("#status")).to_contain_text("privileged_access_required")
    shots.take(page, "platform-roles-refused-without-a-grant")
    href = page.locator("#status a").get_attribute("href") or ""
    assert parse_qs(urlsplit(href).query) == {
        "action": ["admin:platform_principals.roles.set"],
        "target": ["audra:platform_admin"],
    }, href
    page.click("#status a")
    expect(page.locator("#request-access input[name=target]")).to_have_value("audra:platform_admin")
    page.go_back()

    audra.locator("button[data-action=disable]").click()  # an auditor: no grant
    expect(audra).to_contain_text("disabled")
    audra.locator("button[data-action=enable]").click()
    expect(page.locator("#status")).to_contain_text("privileged_access_required")
    gateway.grant("admin:platform_principals.enable", "audra")
    audra.locator("button[data-action=enable]").click()
    expect(audra).to_contain_text("active")
    expect(page.locator("#status")).to_be_empty()
    shots.take(page, "platform-principal-enabled-under-a-grant")
    audra.locator("button[data-action=delete]").click()
    audra.locator("button[data-action=confirm-delete]").click()
    expect(audra).to_have_count(0)
    assert gateway.admin("GET", "/admin/v1/principals/audra").status == 404

    page.click("a[href='/console/capacity']")
    page.fill("#plan-form input[name=gpu]", "h100-80gb")
    page.fill("#plan-form input[name=profiles]", "3g.40gb,2g.20gb,1g.10gb:2")
    page.click("#plan-form button[type=submit]")
    rows = page.locator("#plan tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator("#plan")).to_contain_text("3g.40gb")
    shots.take(page, "mig-plan")
    page.fill("#plan-form input[name=profiles]", "7g.80gb:2")
    page.click("#plan-form button[type=submit]")
    expect(page.locator("#plan [role=alert]")).to_contain_text("No MIG layout exists")
    page.fill("#plan-form input[name=profiles]", "<img src=x>")
    page.click("#plan-form button[type=submit]")
    expect(page.locator("#plan [role=alert]")).to_contain_text("Refused (400)")
    assert page.locator("img").count() == 0
    shots.take(page, "mig-plan-refused")


def test_a_platform_auditor_verifies_the_log_and_gets_no_admin_pages(
    gateway: GatewayThread,
    tabs: Callable[[str], Tab],
) -> None:
    gateway.tenant("watched")  # something in the log to verify
    who = platform_auditor(gateway, "ursula")
    tab = tabs("platform-auditor")
    page, shots = tab.page, tab.shots
    sign_in(page, gateway, who, shots)
    expect(page.locator("header#top .who")).to_contain_text("platform_auditor")
    menu = page.locator("header#top nav a").evaluate_all("links => links.map(a => a.pathname)")
    assert menu == AUDITOR_MENU, menu

    page.click("a[href='/console/audit']")
    first = page.locator("#events tbody tr").first
    expect(first).to_be_visible()
    first.locator("button").click()
    expect(first.locator(".verdict.ok")).to_contain_text("verified")
    shots.take(page, "platform-auditor-audit-verified")

    # Typed, an admin's action is the API's to refuse: a plan is the platform admin's.
    tab.goto(gateway, "/console/capacity")
    page.fill("#plan-form input[name=profiles]", "1g.10gb")
    page.click("#plan-form button[type=submit]")
    expect(page.locator("#plan [role=alert]")).to_contain_text("Not allowed (403")
    shots.take(page, "platform-auditor-plan-refused")

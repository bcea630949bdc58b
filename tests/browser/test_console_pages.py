"""The console's role pages in a real browser (Debian's Chromium, headless, via Playwright).

- A platform admin across its pages: tenants (tier), models and grants, limits and guard,
  GPUs and workers, quota requests, keys and certificates, usage, access requests.
- The two-person rule: admin A's delete is refused and links to an access request, which A
  files; A cannot approve it; admin B, in a second browser context, approves it; A's delete
  then works, once.
- A tenant admin: a key created and rotated (each secret shown once, gone after navigating
  away and back), revoked; model versions, quota requests, guard settings, policies, usage;
  and every platform page, or another tenant's object named in the URL, shows the API's
  403 or 404 as a sentence, never data.

Screenshots of every page go to each test's temporary folder (printed with `pytest -s`).
One gateway serves the whole module.  No CSP violation or script error may be logged; the
browser's own note of a refused fetch (400, 403, 404) is expected where a refusal is the point.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.support.browser import Tab, sign_in
from tests.support.console import Person, platform_admin, second_admin, tenant_admin
from tests.support.gateway import GatewayThread, http

pytestmark = pytest.mark.browser

UPSTREAM = "http://127.0.0.1:9/v1"  # never called: models and versions only name it


def test_a_platform_admin_across_its_pages(
    gateway: GatewayThread, tabs: Callable[[str], Tab]
) -> None:
    gateway.tenant("globex")
    gateway.model("shared-m", UPSTREAM)
    asker = gateway.key("globex", role="tenant_admin")
    asked = gateway.call(
        "POST",
        "/tenant/v1/quota-requests",
        asker,
        {"quota": "concurrency", "value": 2, "reason": "a pilot team"},
    )
    assert asked.status == 201 and not asked.body["privileged"], asked.body
    tab = tabs("platform")
    page, shots = tab.page, tab.shots
    sign_in(page, gateway, platform_admin(gateway), shots)

    page.click("a[href='/console/tenants']")
    tier = page.locator("select[aria-label='Tier of globex']")
    tier.select_option("mig")
    expect(page.locator("#status")).to_be_empty()
    page.reload()
    expect(page.locator("select[aria-label='Tier of globex']")).to_have_value("mig")
    shots.take(page, "tenants")

    page.click("a[href='/console/models']")
    grants = page.locator("#models tr", has_text="shared-m")
    expect(grants).to_contain_text("no tenant")
    page.select_option("#grant-model select[name=model]", "shared-m")
    page.select_option("#grant-model select[name=tenant]", "globex")
    page.click("#grant-model button[type=submit]")
    expect(grants.locator("button.chip")).to_have_text("Revoke globex")
    shots.take(page, "models-granted")
    grants.locator("button.chip").click()
    expect(grants).to_contain_text("no tenant")
    models = gateway.must("GET", "/admin/v1/models")["data"]
    assert next(m for m in models if m["name"] == "shared-m")["granted_to"] == []

    tab.goto(gateway, "/console/settings?tenant=globex")
    expect(page.locator("#limits")).to_contain_text("Tenant globex")
    page.select_option("#set-limit select[name=limit]", "requests_per_minute")
    page.fill("#set-limit input[name=value]", "10")
    page.click("#set-limit button[type=submit]")
    expect(page.locator("#limits tr", has_text="requests_per_minute")).to_contain_text("10")
    page.select_option("#set-guard select[name=setting]", "pii")
    page.select_option("#set-guard select[name=value]", "redact")
    page.click("#set-guard button[type=submit]")
    expect(page.locator("#guard tr", has_text="pii")).to_contain_text("redact")
    shots.take(page, "limits-and-guard")
    assert gateway.must("GET", "/admin/v1/tenants/globex/guard")["guard"]["pii"] == "redact"

    page.click("a[href='/console/capacity']")
    expect(page.locator("#workers")).not_to_be_empty()
    expect(page.locator("#gpus")).not_to_be_empty()
    assert page.locator("main [role=alert]").count() == 0  # both APIs answered
    shots.take(page, "gpus-and-workers")

    page.click("a[href='/console/quotas']")
    request = page.locator("#quotas tr", has_text="a pilot team")
    expect(request).to_contain_text("globex")
    request.get_by_role("button", name="Approve").click()
    expect(request).to_contain_text("approved")
    shots.take(page, "quota-requests")

    page.click("a[href='/console/key-status']")
    expect(page.locator("#key-status table")).to_contain_text("Age")
    expect(page.locator("#key-status")).to_contain_text("As of")
    shots.take(page, "keys-and-certificates")

    page.click("a[href='/console/usage-table']")
    expect(page.locator("#usage")).not_to_be_empty()
    shots.take(page, "usage")

    page.click("a[href='/console/access']")
    expect(page.locator("#requests")).not_to_be_empty()
    shots.take(page, "access-requests")
    assert len(shots.taken) == 10


def test_two_admins_approve_a_delete_in_two_browsers(
    gateway: GatewayThread, tabs: Callable[[str], Tab]
) -> None:
    gateway.tenant("doomed")
    ada, bea = second_admin(gateway, "ada"), second_admin(gateway, "bea")
    a, b = tabs("admin-a"), tabs("admin-b")
    sign_in(a.page, gateway, ada, a.shots)
    sign_in(b.page, gateway, bea, b.shots)

    a.goto(gateway, "/console/tenants")
    doomed = a.page.locator("#tenants tr", has_text="doomed")
    doomed.locator("button[data-action=delete]").click()
    doomed.locator("button[data-action=confirm-delete]").click()
    expect(a.page.locator("#status")).to_contain_text("privileged_access_required")
    a.shots.take(a.page, "delete-refused-without-a-grant")
    a.page.click("#status a")  # the access request form, filled in
    expect(a.page.locator("#request-access input[name=action]")).to_have_value(
        "admin:tenants.delete"
    )
    expect(a.page.locator("#request-access input[name=target]")).to_have_value("doomed")
    a.page.fill("#request-access input[name=reason]", "ticket OPS-1: the customer left")
    a.page.fill("#request-access input[name=minutes]", "15")
    a.page.click("#request-access button[type=submit]")
    mine = a.page.locator("#requests tr", has_text="OPS-1")
    expect(mine).to_contain_text("pending")
    mine.get_by_role("button", name="Approve").click()  # one's own: refused
    expect(a.page.locator("#status")).to_contain_text("self_approval")
    expect(mine).to_contain_text("pending")
    a.shots.take(a.page, "access-requested")

    b.goto(gateway, "/console/access")
    theirs = b.page.locator("#requests tr", has_text="OPS-1")
    expect(theirs).to_contain_text("admin:tenants.delete")
    expect(theirs).to_contain_text("15 min, one use")  # what B approves, seen before
    theirs.get_by_role("button", name="Approve").click()
    expect(theirs).to_contain_text("approved")
    expect(theirs).to_contain_text("bea")
    b.shots.take(b.page, "access-approved-by-the-second-admin")
    # The grant is A's: B's own delete is still refused.
    b.goto(gateway, "/console/tenants")
    b_row = b.page.locator("#tenants tr", has_text="doomed")
    b_row.locator("button[data-action=delete]").click()
    b_row.locator("button[data-action=confirm-delete]").click()
    expect(b.page.locator("#status")).to_contain_text("privileged_access_required")

    a.goto(gateway, "/console/tenants")
    doomed = a.page.locator("#tenants tr", has_text="doomed")
    doomed.locator("button[data-action=delete]").click()
    doomed.locator("button[data-action=confirm-delete]").click()
    expect(doomed).to_have_count(0)
    a.shots.take(a.page, "tenant-deleted-under-the-grant")
    assert gateway.admin("GET", "/admin/v1/tenants/doomed").status == 404
    a.goto(gateway, "/console/access")
    expect(a.page.locator("#requests tr", has_text="OPS-1")).to_contain_text("used")


def test_a_tenant_admin_rotates_and_revokes_keys_and_sees_only_its_own(
    gateway: GatewayThread, tabs: Callable[[str], Tab]
) -> None:
    gateway.tenant("initech")
    gateway.tenant("rival")
    gateway.model("initech-m", UPSTREAM, tenant="initech")
    gateway.model("rival-m", UPSTREAM, tenant="rival")
    gateway.allow_upstreams("initech", ["127.0.0.1/32"])
    who: Person = tenant_admin(gateway, "initech", "ines")
    tab = tabs("tenant")
    page, shots = tab.page, tab.shots
    sign_in(page, gateway, who, shots)

    tab.goto(gateway, "/console/keys")
    page.fill("#create-key input[name=name]", "svc")
    page.select_option("#create-key select[name=role]", "end_user")
    page.click("#create-key button[type=submit]")
    first = page.locator("#secret-value").inner_text()
    assert first.startswith("bk_")
    shots.take(page, "key-created")
    page.click("a[href='/console/principals']")  # leave, and come back
    page.go_back()
    expect(page.locator("#keys")).to_contain_text("svc")
    assert page.locator("#secret-value").count() == 0 and first not in page.content()

    page.locator("#keys tr", has_text="svc").get_by_role("button", name="Rotate").click()
    rotated = page.locator("#secret-value").inner_text()
    assert rotated.startswith("bk_") and rotated != first
    message = page.locator("#secret p").inner_text()
    new_id = re.search(r"Key (\S+) rotated", message)
    assert new_id is not None, message
    shots.take(page, "key-rotated")
    assert http("GET", gateway.url + "/v1/models", rotated).status == 200
    assert http("GET", gateway.url + "/v1/models", first).status == 401  # no grace asked for
    page.click("#secret button")  # "I have stored it"
    assert page.locator("#secret-value").count() == 0
    page.locator(f"button.danger[data-key='{new_id.group(1)}']").click()
    expect(page.locator("#keys tr", has_text=new_id.group(1))).to_contain_text("revoked")
    assert http("GET", gateway.url + "/v1/models", rotated).status == 401
    shots.take(page, "key-revoked")

    page.click("a[href='/console/principals']")
    page.fill("#create-principal input[name=name]", "pat")
    page.select_option("#create-principal select[name=roles]", "end_user")
    page.click("#create-principal button[type=submit]")
    pat = page.locator("#principals tr", has_text="pat")
    expect(pat).to_contain_text("user")
    pat.locator("select").select_option("model_developer")
    expect(page.locator("#status")).to_be_empty()
    page.reload()
    expect(page.locator("#principals tr", has_text="pat").locator("select")).to_have_value(
        "model_developer"
    )
    page.locator("#principals tr", has_text="ines").locator("select").select_option("end_user")
    expect(page.locator("#status")).to_contain_text("own principal")  # never one's own roles
    shots.take(page, "tenant-principals")
    page.locator("#principals tr", has_text="pat").locator("button[data-action=delete]").click()
    page.locator("#principals tr", has_text="pat").locator(
        "button[data-action=confirm-delete]"
    ).click()
    expect(page.locator("#principals tr", has_text="pat")).to_have_count(0)

    page.click("a[href='/console/versions']")
    page.fill("#publish-version input[name=version]", "v1")
    page.fill("#publish-version input[name=upstream]", UPSTREAM)
    page.fill("#publish-version input[name=upstream_model]", "base")
    page.click("#publish-version button[type=submit]")
    version = page.locator("#versions tr", has_text="v1")
    expect(version).to_contain_text("base")
    version.get_by_role("button", name="Retire").click()
    expect(version).to_contain_text("retired")
    shots.take(page, "model-versions")

    page.click("a[href='/console/quotas']")
    page.select_option("#request-quota select[name=quota]", "concurrency")
    page.fill("#request-quota input[name=value]", "3")
    page.fill("#request-quota input[name=reason]", "batch jobs")
    page.click("#request-quota button[type=submit]")
    expect(page.locator("#quotas tr", has_text="batch jobs")).to_contain_text("pending")
    shots.take(page, "quota-requests")

    page.click("a[href='/console/settings']")
    expect(page.locator("#set-limit")).to_be_hidden()  # more is a quota request
    page.select_option("#set-guard select[name=setting]", "secrets")
    page.select_option("#set-guard select[name=value]", "block")
    page.click("#set-guard button[type=submit]")
    expect(page.locator("#guard tr", has_text="secrets")).to_contain_text("block")
    shots.take(page, "limits-and-guard")

    page.click("a[href='/console/policies']")
    expect(page.locator("#policy-ids")).to_contain_text("Version")
    shots.take(page, "policies")
    page.click("a[href='/console/usage-table']")
    expect(page.locator("#usage")).not_to_be_empty()
    shots.take(page, "usage")

    # Typed URLs: the platform's pages, and another tenant's objects, answer the API's refusal.
    for path in ("/console/tenants", "/console/access", "/console/models", "/console/key-status"):
        tab.goto(gateway, path)
        expect(page.locator("#status [role=alert]")).to_contain_text("Not allowed (403")
        assert page.locator("main table").count() == 0, path
    shots.take(page, "platform-page-refused")
    tab.goto(gateway, "/console/capacity")
    expect(page.locator("#gpus [role=alert]")).to_contain_text("Not allowed (403")
    expect(page.locator("#workers [role=alert]")).to_contain_text("Not allowed (403")
    tab.goto(gateway, "/console/versions?model=rival-m")
    expect(page.locator("#status [role=alert]")).to_contain_text("Not found (404)")
    assert page.locator("#versions table").count() == 0
    shots.take(page, "another-tenants-model-not-found")
    # A name shaped as markup stays one encoded path segment, and text; one shaped as a path
    # is refused before any call (the server would split it at its `%2F`).
    for model, refusal in (
        ("..%2F..%2Fadmin%2Fv1%2Ftenants", "is not a name"),
        ("%3Cimg%20src%3Dx%3E", "Not found (404)"),
        ("rival-m%2Fversions", "is not a name"),
    ):
        tab.goto(gateway, f"/console/versions?model={model}")
        expect(page.locator("#status [role=alert]")).to_contain_text(refusal)
        assert page.locator("#versions table").count() == 0 and page.locator("img").count() == 0
    for path in ("/console/settings?tenant=rival", "/console/usage-table?tenant=rival"):
        tab.goto(gateway, path)
        expect(page.locator("main")).not_to_contain_text("rival")
    expect(page.locator("#usage")).not_to_be_empty()
    tab.goto(gateway, "/console/settings?tenant=rival")
    expect(page.locator("#guard")).to_contain_text("Tenant initech")


def test_a_path_shaped_name_in_the_url_never_leaves_its_api_path(
    gateway: GatewayThread, tabs: Callable[[str], Tab]
) -> None:
    # `.` and `..` come through encodeURIComponent unchanged, and the URL parser resolves
    # them (written `%2E` too): `?tenant=..` would make the settings page read and change
    # `/admin/v1/tenants/../limits`, which is `/admin/v1/limits`, not the tenant it shows.
    # A `/` is encoded, but the server decodes `%2F` before it matches a route: `?tenant=
    # dotty%2Fkeys%2FID` would reach `/admin/v1/tenants/dotty/keys/ID/limits`, a key's.
    gateway.tenant("dotty")
    tenant, platform = tabs("dot-tenant"), tabs("dot-platform")
    sign_in(tenant.page, gateway, tenant_admin(gateway, "dotty", "dan"), tenant.shots)
    sign_in(platform.page, gateway, second_admin(gateway, "dora"), platform.shots)
    asked: list[str] = []
    for tab in (tenant, platform):
        tab.page.on("request", lambda request: asked.append(urlsplit(request.url).path))
    for name in (".", "..", "%2E", "%2e%2E", "dotty%2Fkeys%2Fkey_1", "dotty/keys"):
        tenant.goto(gateway, f"/console/versions?model={name}")
        expect(tenant.page.locator("#status [role=alert]")).to_contain_text("is not a name")
        for page in ("settings", "usage-table"):
            platform.goto(gateway, f"/console/{page}?tenant={name}")
            alert = platform.page.locator("#status [role=alert]")
            expect(alert).to_contain_text("is not a name")
    called = {path for path in asked if path.startswith(("/admin/", "/tenant/"))}
    # The lists that fill the pickers, and nothing named by the URL.
    assert called == {"/tenant/v1/models", "/admin/v1/tenants"}, called

"""The auditor's pages and the usage charts in a real browser, and axe-core over every page.

A tenant auditor signs in with a password and TOTP, opens the audit log and
sees an event verified in green: its inclusion proof and its checkpoint's
Ed25519 signature checked by the page (`static/verify.js`, WebCrypto) against
the key the gateway publishes.  An event altered on its way to the page shows
red, with why; the export bundle downloads and verifies green, and the same
file altered shows red.  The usage page draws its charts.  Then axe-core
(`tests/browser/vendor/`, never served by the gateway) checks every console
page, as each role sees it, for serious or critical accessibility violations.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from bulkhead.console import assets
from tests.integration.test_sign_in import enroll, person
from tests.support.browser import Shots, sign_in
from tests.support.console import Person, platform_admin, platform_auditor, tenant_admin
from tests.support.gateway import GatewayThread, UpstreamThread

pytestmark = pytest.mark.browser

VENDOR = Path(__file__).resolve().parent / "vendor"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
TENANT = "audited"


def tenant_auditor(gw: GatewayThread, tenant: str, name: str) -> Person:
    person(gw, tenant, name, ["tenant_auditor"])
    secret, codes = enroll(gw, tenant, name)
    return Person(tenant, name, secret, codes)


_PEOPLE: dict[str, Person] = {}


def someone(gw: GatewayThread, role: str) -> Person:
    """One person per role for the module's gateway, enrolled once."""
    if role not in _PEOPLE:
        _PEOPLE[role] = {
            "tenant_admin": lambda: tenant_admin(gw, TENANT, "carol"),
            "tenant_auditor": lambda: tenant_auditor(gw, TENANT, "ada"),
            "platform_admin": lambda: platform_admin(gw),
            "platform_auditor": lambda: platform_auditor(gw, "paula"),
        }[role]()
    return _PEOPLE[role]


def signed_in(tab: Page, gw: GatewayThread, who: Person) -> None:
    """`who` signed in by the page's own sign-in API with a recovery code (the UI's TOTP
    sign-in, one code per time step, is the other tests'); the browser keeps the cookie."""
    tab.goto(gw.url + assets.SIGN_IN_PAGE)
    status = tab.evaluate(
        """async (fields) => (await fetch("/console/api/login", {
            method: "POST", headers: {"content-type": "application/json"},
            body: JSON.stringify(fields)})).status""",
        who.fields(),
    )
    assert status == 200, status


def chat(gw: GatewayThread, key: str, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    return gw.call("POST", "/v1/chat/completions", key, body).status


@pytest.fixture(scope="module")
def audited(gateway: GatewayThread, upstream: UpstreamThread) -> GatewayThread:
    """A tenant with calls made (two refused by its key's limit), all under a checkpoint."""
    gateway.tenant(TENANT)
    gateway.model(f"{TENANT}-m", upstream.url, grant=(TENANT,), upstream_model="fake")
    key = gateway.key(TENANT)
    caller = next(
        k["id"]
        for k in gateway.must("GET", f"/admin/v1/tenants/{TENANT}/keys")["data"]
        if k["role"] == "end_user"
    )
    path = f"/admin/v1/tenants/{TENANT}/keys/{caller}/limits"
    gateway.must("PATCH", path, {"requests_per_minute": 3})
    assert [chat(gateway, key, f"{TENANT}-m") for _ in range(5)] == [200, 200, 200, 429, 429]
    gateway.app.audit.flush()
    gateway.app.sequencer.checkpoint()
    return gateway


def axe_source() -> str:
    source = (VENDOR / "axe.min.js").read_bytes()
    assert hashlib.sha256(source).hexdigest() == AXE_SHA256, "axe.min.js is not the pinned file"
    return source.decode()


def test_the_vendored_axe_core_is_the_pinned_release() -> None:
    readme = (VENDOR / "README.md").read_text()
    assert AXE_SHA256 in readme and "4.14.1" in readme
    assert "Mozilla Public License" in (VENDOR / "LICENSE").read_text()
    axe_source()


def tamper_first_event(route: Route) -> None:
    answer = route.fetch()
    body = answer.json()
    body["data"][0]["status"] = 599
    route.fulfill(response=answer, body=json.dumps(body))


def test_an_auditor_verifies_events_and_bundles_in_the_browser(
    audited: GatewayThread,
    page: tuple[Page, list[str], Shots],
    tmp_path: Path,
) -> None:
    tab, problems, shots = page
    sign_in(tab, audited, someone(audited, "tenant_auditor"), shots)
    tab.click("a[href='/console/audit']")
    keys = audited.must("GET", "/admin/v1/audit/keys")
    key_id = keys["verifiers"][-1].split("+")[1]
    expect(tab.locator("#keys")).to_contain_text(key_id)
    expect(tab.locator("#keys")).to_contain_text(keys["origin"])

    first = tab.locator("#events tbody tr").first
    expect(first).to_be_visible()
    first.locator("button").click()
    expect(first.locator(".verdict.ok")).to_contain_text("verified")
    expect(first.locator(".verdict.ok")).to_contain_text(key_id)
    # A tenant's auditor sees its tenant's view: its events and the platform's acts on it.
    tenant_id = audited.must("GET", f"/admin/v1/tenants/{TENANT}")["id"]
    cells = tab.locator("#events tbody tr td:nth-child(6)").all_inner_texts()
    assert cells and set(cells) == {tenant_id}, set(cells)
    # The sign-in's own events may be newer than the last checkpoint (signed within
    # `interval_s` of their commit): a row's proof is asked for once, at the click, and one
    # not yet signed shows "not in a checkpoint yet", as it should.  Sign them first.
    audited.app.audit.flush()
    audited.app.sequencer.checkpoint()
    tab.click("#verify-all")
    expect(tab.locator("#events .verdict.ok")).to_have_count(
        tab.locator("#events tbody tr").count()
    )
    assert tab.locator("#events .verdict.bad").count() == 0
    shots.take(tab, "audit-events-verified")

    # An event altered between the gateway and the page: its leaf no longer matches.
    tab.route("**/tenant/v1/audit/events?*", tamper_first_event)
    tab.reload()
    first = tab.locator("#events tbody tr").first
    first.locator("button").click()
    expect(first.locator(".verdict.bad")).to_contain_text("altered")
    shots.take(tab, "audit-event-tampered")
    tab.unroute("**/tenant/v1/audit/events?*")
    tab.reload()

    with tab.expect_download() as download:
        tab.click("#download")
    expect(tab.locator("#bundle-verdict .verdict.ok")).to_contain_text("verified")
    shots.take(tab, "audit-bundle-downloaded-verified")
    saved = tmp_path / "bundle.json"
    download.value.save_as(saved)
    bundle: dict[str, Any] = json.loads(saved.read_text())
    assert bundle["tenant"] is not None and bundle["proofs"]

    tab.set_input_files("#bundle-file", str(saved))
    expect(tab.locator("#bundle-verdict .verdict.ok")).to_contain_text("bundle.json verified")
    index = int(sorted(bundle["proofs"], key=int)[0])
    entry = bundle["entries"][index]
    entry["body"] = entry["body"].replace('"outcome":"', '"outcome":"x', 1)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(bundle))
    tab.set_input_files("#bundle-file", str(tampered))
    expect(tab.locator("#bundle-verdict .verdict.bad")).to_contain_text("does not verify")
    shots.take(tab, "audit-bundle-tampered")

    tab.click("a[href='/console/usage']")
    for chart in ("requests", "tokens", "latency", "refusals"):
        expect(tab.locator(f"#{chart} svg polyline").first).to_be_attached()
    expect(tab.locator("#refusal-reasons")).to_contain_text("rate_limit_exceeded")
    expect(tab.locator("#requests")).to_contain_text(f"{TENANT}-m")
    shots.take(tab, "usage-charts")
    assert problems == [], problems


def test_a_platform_admin_sees_a_tenants_usage_by_key(
    audited: GatewayThread,
    page: tuple[Page, list[str], Shots],
) -> None:
    tab, problems, shots = page
    sign_in(tab, audited, someone(audited, "platform_admin"), shots)
    tab.click("a[href='/console/usage']")
    tab.select_option("#range select[name=tenant]", TENANT)
    tab.select_option("#range select[name=split]", "key")
    tab.click("#range button[type=submit]")
    expect(tab.locator("#requests figcaption")).to_contain_text("by key")
    expect(tab.locator("#refusal-reasons")).to_contain_text("rate_limit_exceeded")
    shots.take(tab, "usage-platform-by-key")
    assert problems == [], problems


def test_a_platform_admin_with_one_tenants_grant_verifies_that_tenants_events(
    audited: GatewayThread,
    page: tuple[Page, list[str], Shots],
) -> None:
    # The admin's grant covers one tenant's view, so each proof must be asked of that same
    # view: asked of the whole log, every "Verify" would be refused, red, for want of a grant.
    tab, problems, shots = page
    audited.grant("admin:audit.export.get", TENANT)
    signed_in(tab, audited, someone(audited, "platform_admin"))
    tab.goto(audited.url + "/console/audit")
    expect(tab.locator("#status [role=alert]")).to_be_visible()  # the whole log: no grant
    tab.fill("#filters input[name=tenant]", TENANT)
    tab.click("#filters button[type=submit]")
    first = tab.locator("#events tbody tr").first
    first.locator("button").click()
    expect(first.locator(".verdict.ok")).to_contain_text("verified")
    shots.take(tab, "audit-platform-admin-one-tenant")
    # The whole log without a grant for it: the browser logs the API's 403, nothing else.
    assert all("403" in p for p in problems), problems


def serious_violations(tab: Page, source: str) -> list[str]:
    # evaluate() runs in the page through the DevTools protocol, which the page's CSP
    # (`script-src 'self'`, no inline script) does not govern; axe is never served.
    tab.evaluate(source)
    results = tab.evaluate(
        "async () => { const r = await axe.run(document);"
        " return {passes: r.passes.length, violations: r.violations}; }"
    )
    assert results["passes"] > 0, "axe-core checked nothing"
    found = results["violations"]
    return [
        f"{tab.url}: {v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize(
    "role", ["tenant_admin", "tenant_auditor", "platform_admin", "platform_auditor"]
)
def test_every_console_page_passes_axe_core(
    audited: GatewayThread,
    page: tuple[Page, list[str], Shots],
    role: str,
) -> None:
    tab, problems, shots = page
    source = axe_source()
    tab.goto(audited.url + assets.SIGN_IN_PAGE)
    violations = serious_violations(tab, source)
    signed_in(tab, audited, someone(audited, role))
    for path in sorted(set(assets.PAGES) - {"/console/"}):
        tab.goto(audited.url + path)
        expect(tab.locator("header#top .who")).to_be_visible()
        tab.wait_for_load_state("networkidle")
        violations += serious_violations(tab, source)
        shots.take(tab, f"{role}-{path.rsplit('/', 1)[1] or 'overview'}")
    assert violations == [], "\n".join(violations)
    # A page of another role answers the API's 403, which the browser logs; nothing else.
    assert all("403" in p for p in problems), problems

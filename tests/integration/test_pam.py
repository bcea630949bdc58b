"""Privileged access: requests, a second approver, time-bound grants, break-glass, the record."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from bulkhead.app.alerts import break_glass_alert
from bulkhead.domain import PrincipalKind, Role
from bulkhead.observe.alerts import WebhookPoster
from bulkhead.store import repo
from tests.support.gateway import GatewayThread, Response

P = "/admin/v1/access-requests"
REASON = "ticket OPS-1234: customer asked to close the account"


def request(gw: GatewayThread, action: str, target: str, **extra: Any) -> Response:
    body = {"action": action, "target": target, "reason": REASON, **extra}
    return gw.admin("POST", P, body)


def platform_key(gw: GatewayThread, role: Role, name: str) -> str:
    with gw.app.db.platform_transaction() as session:
        principal = repo.create_principal(session, None, name, PrincipalKind.USER, [role])
        secret = repo.create_key(session, None, role=role, principal=principal).secret
    gw.app.catalog.reload()
    return secret


def events(gw: GatewayThread, resource: str) -> list[dict[str, Any]]:
    return [e for e in gw.audit_events() if e.get("resource") == resource]


def test_delete_needs_a_grant_from_another_admin_and_uses_it_once(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    tid = gateway.must("GET", f"/admin/v1/tenants/{unique}")["id"]
    refused = gateway.admin("DELETE", f"/admin/v1/tenants/{unique}")
    assert refused.status == 403
    assert refused.body["error"]["code"] == "privileged_access_required"
    assert "bulkhead access request" in refused.body["error"]["message"]

    made = request(gateway, "admin:tenants.delete", unique, duration_s=900)
    assert made.status == 201, made.body
    acr = made.body
    assert (acr["status"], acr["break_glass"], acr["expires_at"]) == ("pending", False, None)
    assert acr["target_tenant_id"] == tid and acr["single_use"] is True
    assert gateway.admin("DELETE", f"/admin/v1/tenants/{unique}").status == 403  # pending

    own = gateway.admin("POST", f"{P}/{acr['id']}/approve")
    assert own.status == 403 and own.body["error"]["code"] == "self_approval"
    assert "different platform admin" in own.body["error"]["message"]

    approver = gateway.approver_key()
    approved = gateway.admin("POST", f"{P}/{acr['id']}/approve", key=approver)
    assert approved.status == 200, approved.body
    assert approved.body["status"] == "approved" and approved.body["expires_at"]
    again = gateway.admin("POST", f"{P}/{acr['id']}/approve", key=approver)
    assert again.status == 409
    # The grant is the requester's: the approver holds none.
    assert gateway.admin("DELETE", f"/admin/v1/tenants/{unique}", key=approver).status == 403

    assert gateway.must("DELETE", f"/admin/v1/tenants/{unique}")["deleted"] is True
    assert gateway.must("GET", f"{P}/{acr['id']}")["status"] == "used"
    gateway.tenant(unique)  # the same name again: the used grant does not cover it
    assert gateway.admin("DELETE", f"/admin/v1/tenants/{unique}").status == 403

    steps = [(e["action"], e["status"]) for e in events(gateway, acr["id"])]
    for step in [
        ("pam.request.create", 200),
        ("admin:access.approve", 403),
        ("pam.request.approve", 200),
        ("admin:access.approve", 200),
        ("admin:access.approve", 409),
        ("pam.grant.use", 200),
        ("admin:access.get", 200),
    ]:
        assert step in steps, step
    pam_events = [e for e in events(gateway, acr["id"]) if e["action"].startswith("pam.")]
    assert all(e["tenant_id"] == tid for e in pam_events)  # in the tenant's own view too
    deletes = [e for e in events(gateway, unique) if e["action"] == "admin:tenants.delete"]
    assert [e["status"] for e in deletes] == [403, 403, 403, 200, 403]
    assert deletes[0]["decision"] == "deny"
    # The Cedar decision refused it: the audit names the policy (no grant, another tenant).
    assert deletes[0]["reason"] == "privileged_access_required:platform.tenant-isolation"


def test_grant_expires_by_itself(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    path = f"/admin/v1/audit/bundle?tenant={unique}"
    assert gateway.admin("GET", path).status == 403
    grant = gateway.grant("admin:audit.export.get", unique, duration_s=60)
    assert gateway.admin("GET", path).status == 200
    assert gateway.admin("GET", path).status == 200  # a read grant lasts its window
    # The whole log holds every tenant's events: a grant on the tenant is not one on it.
    assert gateway.admin("GET", "/admin/v1/audit/bundle").status == 403
    pam = gateway.app.maintenance.pam
    assert pam is not None
    real = pam.now
    pam.now = lambda: real() + timedelta(seconds=61)
    try:
        assert gateway.admin("GET", path).status == 403
        assert gateway.app.maintenance.run_once()["expired"] >= 1
    finally:
        pam.now = real
    assert gateway.admin("GET", path).status == 403  # stays expired, on any clock
    assert gateway.must("GET", f"{P}/{grant['id']}")["status"] == "expired"
    expired = gateway.must("GET", f"{P}?status=expired")["data"]
    assert grant["id"] in {r["id"] for r in expired}
    assert "pam.grant.expire" in {e["action"] for e in events(gateway, grant["id"])}


def test_a_real_second_passes(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    gateway.grant("admin:audit.export.get", unique, duration_s=1)
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while (status := gateway.admin("GET", f"/admin/v1/audit/bundle?tenant={unique}").status) == 200:
        assert datetime.now(UTC) < deadline
    assert status == 403


def test_deny(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    acr = request(gateway, "admin:tenants.delete", unique).body
    path = f"{P}/{acr['id']}/deny"
    approver = gateway.approver_key()
    assert gateway.admin("POST", path, {"reason": "no"}, key=approver).status == 400
    denied = gateway.admin("POST", path, {"reason": "no ticket for this"}, key=approver)
    assert denied.status == 200 and denied.body["status"] == "denied"
    assert denied.body["decision_reason"] == "no ticket for this"
    assert gateway.admin("POST", f"{P}/{acr['id']}/approve", key=approver).status == 409
    assert gateway.admin("DELETE", f"/admin/v1/tenants/{unique}").status == 403
    assert "pam.request.deny" in {e["action"] for e in events(gateway, acr["id"])}


def webhook(received: list[dict[str, Any]]) -> HTTPServer:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body POSTed to it."""

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_break_glass_grants_at_once_and_raises_the_alarm(
    gateway: GatewayThread,
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[dict[str, Any]] = []
    server = webhook(received)
    pam = gateway.app.maintenance.pam
    assert pam is not None
    counted = gateway.app.metrics.registry.get_sample_value("bulkhead_break_glass_total")
    # The gateway's own alarm counts each break-glass (what the alert rule pages on) and
    # posts to the webhook; here it posts to this test's receiver.
    before = pam.alert
    pam.alert = break_glass_alert(
        gateway.app.metrics, WebhookPoster(f"http://127.0.0.1:{server.server_port}/a")
    )
    gateway.tenant(unique)
    try:
        assert request(gateway, "admin:tenants.delete", unique, break_glass=True,
                       duration_s=7200).status == 400  # fmt: skip
        no_reason = gateway.admin(
            "POST", P, {"action": "admin:tenants.delete", "target": unique, "break_glass": True}
        )
        assert no_reason.status == 400
        with caplog.at_level(logging.CRITICAL, logger="bulkhead.pam"):
            made = request(gateway, "admin:tenants.delete", unique, break_glass=True)
        assert made.status == 201, made.body
        assert made.body["status"] == "approved" and made.body["break_glass"] is True
        assert gateway.must("DELETE", f"/admin/v1/tenants/{unique}")["deleted"] is True
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not received and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
    finally:
        pam.alert = before
        server.shutdown()
    assert any("BREAK-GLASS" in r.getMessage() for r in caplog.records)
    (alert,) = received
    assert alert["event"] == "pam.break_glass" and alert["id"] == made.body["id"]
    assert (alert["action"], alert["target"], alert["reason"]) == (
        "admin:tenants.delete",
        unique,
        REASON,
    )
    actions = {e["action"] for e in events(gateway, made.body["id"])}
    assert {"pam.request.create", "pam.break_glass", "pam.grant.use"} <= actions
    assert gateway.app.metrics.registry.get_sample_value("bulkhead_break_glass_total") == (
        (counted or 0) + 1
    )
    assert before is not None  # the composition root gave pam its counting alarm
    before({"event": "pam.break_glass"})
    assert gateway.app.metrics.registry.get_sample_value("bulkhead_break_glass_total") == (
        (counted or 0) + 2
    )


def test_requests_are_checked(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    base = {"action": "admin:tenants.delete", "target": unique}
    assert gateway.admin("POST", P, base).status == 400  # no reason
    assert gateway.admin("POST", P, {**base, "reason": "because"}).status == 400  # too short
    assert request(gateway, "admin:tenants.list", unique).status == 400  # needs no grant
    assert request(gateway, "admin:tenants.delete", f"{unique}-nope").status == 404
    assert request(gateway, "admin:audit.keys.rotate", unique).status == 400  # platform-wide
    assert request(gateway, "admin:tenants.delete", unique, duration_s=5 * 3600).status == 400
    assert request(gateway, "admin:tenants.delete", unique, tenant_id="x").status == 400
    assert gateway.admin("GET", f"{P}/acr_nope").status == 404
    assert gateway.admin("GET", f"{P}?status=bogus").status == 400


def test_only_platform_admins_take_part(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    tenant_admin = gateway.key(unique, role="tenant_admin")
    body = {"action": "admin:tenants.delete", "target": unique, "reason": REASON}
    assert gateway.call("POST", P, tenant_admin, body).status == 403
    assert gateway.call("GET", P, tenant_admin).status == 403
    auditor = platform_key(gateway, Role.PLATFORM_AUDITOR, f"{unique}-auditor")
    acr = request(gateway, "admin:tenants.delete", unique).body
    assert gateway.call("GET", P, auditor).status == 200
    assert gateway.call("GET", f"{P}/{acr['id']}", auditor).status == 200
    assert gateway.call("POST", P, auditor, body).status == 403
    assert gateway.call("POST", f"{P}/{acr['id']}/approve", auditor).status == 403
    # An auditor reads a tenant's audit view by role; only an admin needs a grant for it.
    path = f"/admin/v1/audit/bundle?tenant={unique}"
    assert gateway.call("GET", path, auditor).status == 200


def test_cli_round_trip(gateway: GatewayThread, unique: str, tmp_path: Path) -> None:
    from tests.cli.test_cli import bulkhead

    def cli(key: str, *args: str) -> Any:
        return bulkhead("--server", gateway.url, "--key", key, "access", *args, cwd=tmp_path)

    gateway.tenant(unique)
    made = cli(
        gateway.admin_key,
        "request", "--action", "admin:tenants.delete", "--target", unique,
        "--reason", REASON, "--duration", "10m", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    acr = json.loads(made.stdout)
    assert acr["status"] == "pending" and acr["duration_s"] == 600
    own = cli(gateway.admin_key, "approve", acr["id"])
    assert own.returncode == 1 and "different platform admin" in own.stderr
    approved = cli(gateway.approver_key(), "approve", acr["id"], "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["status"] == "approved"
    listed = cli(gateway.admin_key, "list", "--status", "approved", "--json")
    assert acr["id"] in {r["id"] for r in json.loads(listed.stdout)}
    table = cli(gateway.admin_key, "list")
    assert table.returncode == 0 and "access requests" in table.stdout

    rotate = ("--action", "admin:audit.keys.rotate", "--reason", REASON, "--json")
    other = json.loads(cli(gateway.admin_key, "request", *rotate).stdout)
    denied = cli(gateway.approver_key(), "deny", other["id"], "--reason", "not this week")
    assert denied.returncode == 0 and "denied" in denied.stdout
    bad = cli(gateway.admin_key, "request", "--action", "x", "--reason", REASON, "--duration", "1d")
    assert bad.returncode == 2 and "--duration" in bad.stderr

    deleted = bulkhead(
        "--server", gateway.url, "--key", gateway.admin_key,
        "tenant", "delete", unique, "--yes", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr

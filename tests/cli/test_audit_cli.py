"""`bulkhead audit export | verify | public-key | prove | tail` as an auditor runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import bulkhead
from tests.support.gateway import GatewayThread


def run(gateway: GatewayThread, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    return bulkhead("--server", gateway.url, "--key", gateway.admin_key, *args, cwd=tmp_path)


def test_export_then_verify_offline(gateway: GatewayThread, tmp_path: Path) -> None:
    for name in ("cli-audit-1", "cli-audit-2", "cli-audit-3"):
        gateway.tenant(name)
    gateway.grant("admin:audit.export.get", "platform")  # the whole log: every tenant's events
    gateway.app.audit.flush()
    gateway.app.sequencer.checkpoint()
    bundle, keys = tmp_path / "bundle.json", tmp_path / "keys.txt"
    assert run(gateway, tmp_path, "audit", "export", "-o", str(bundle)).returncode == 0
    assert run(gateway, tmp_path, "audit", "public-key", "-o", str(keys)).returncode == 0
    ok = bulkhead("audit", "verify", str(bundle), "--public-key", str(keys), "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verified"] is True

    data = json.loads(bundle.read_text())
    data["entries"][1]["body"] = data["entries"][1]["body"].replace('"status":', '"statuz":')
    bundle.write_text(json.dumps(data))
    bad = bulkhead("audit", "verify", str(bundle), "--public-key", str(keys), cwd=tmp_path)
    assert bad.returncode == 1
    assert "index 1" in bad.stderr and "Traceback" not in bad.stderr


def test_prove_and_tail(gateway: GatewayThread, tmp_path: Path) -> None:
    gateway.grant("admin:audit.export.get", "platform")
    gateway.app.audit.flush()
    gateway.app.sequencer.checkpoint()
    tail = run(gateway, tmp_path, "audit", "tail")
    assert tail.returncode == 0
    first = json.loads(tail.stdout.splitlines()[0])
    proof = run(gateway, tmp_path, "audit", "prove", first["event_id"])
    assert proof.returncode == 0 and json.loads(proof.stdout)["index"] == first["idx"]


def test_platform_exports_one_tenants_view(gateway: GatewayThread, tmp_path: Path) -> None:
    gateway.tenant("cli-view")
    key = gateway.key("cli-view")
    gateway.call("GET", "/v1/models", key)
    gateway.app.audit.flush()
    gateway.app.sequencer.checkpoint()
    bundle, keys = tmp_path / "b.json", tmp_path / "k.txt"
    gateway.grant("admin:audit.export.get", "cli-view")  # an admin reading a tenant's data
    assert (
        run(
            gateway, tmp_path, "audit", "export", "--tenant", "cli-view", "-o", str(bundle)
        ).returncode
        == 0
    )
    data = json.loads(bundle.read_text())
    tenant_id = gateway.admin("GET", "/admin/v1/tenants/cli-view").body["id"]
    assert data["tenant"] == tenant_id
    own = [json.loads(e["body"]) for e in data["entries"] if "body" in e]
    # Its own events, and (issue 12, item 12) the platform's actions on it.
    assert own and all(tenant_id in (e.get("tenant_id"), e.get("target_tenant")) for e in own)
    assert run(gateway, tmp_path, "audit", "public-key", "-o", str(keys)).returncode == 0
    ok = bulkhead("audit", "verify", str(bundle), "--public-key", str(keys), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (
        run(gateway, tmp_path, "audit", "export", "--tenant", "nope", "-o", str(bundle)).returncode
        == 1
    )

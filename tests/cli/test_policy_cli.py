"""`bulkhead tenant policies|set-policies|clear-policies` against a real gateway."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import as_admin, as_json, assert_refused_before_any_request, offline
from tests.support.gateway import GatewayThread

NO_CHAT = '@id("no-chat")\nforbid (principal, action == Action::"v1:chat", resource);'


def test_a_platform_admin_repairs_a_tenants_policies_under_grants(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    tid = gateway.tenant(unique)["id"]
    admin = gateway.key(unique, role="tenant_admin")
    everything = {"policies": "forbid (principal, action, resource);"}
    assert gateway.call("PUT", "/tenant/v1/policies", admin, everything).status == 200
    assert as_json(gateway, tmp_path, "tenant", "policies", unique)["ids"] == [
        f"tenant.{tid}.policy0"
    ]
    source = tmp_path / "repair.cedar"
    source.write_text(NO_CHAT)

    refused = as_admin(gateway, tmp_path, "tenant", "set-policies", unique, str(source))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "bulkhead access request" in refused.stderr and "admin:policies.update" in refused.stderr
    gateway.grant("admin:policies.update", unique)
    repaired = as_json(gateway, tmp_path, "tenant", "set-policies", unique, str(source))
    assert repaired["ids"] == [f"tenant.{tid}.no-chat"] and repaired["policies"] == NO_CHAT

    unconfirmed = as_admin(gateway, tmp_path, "tenant", "clear-policies", unique)
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    gateway.grant("admin:policies.delete", unique)
    cleared = as_json(gateway, tmp_path, "tenant", "clear-policies", unique, "--yes")
    assert cleared == {"tenant": unique, "policies_deleted": True}
    table = as_admin(gateway, tmp_path, "tenant", "policies", unique)
    assert table.returncode == 0 and unique in table.stdout


def test_a_refused_policy_is_reported_cleanly(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.grant("admin:policies.update", unique)
    source = tmp_path / "deep.cedar"
    source.write_text(
        "forbid (principal, action, resource) when { " + "(" * 800 + "true" + ")" * 800 + " };"
    )
    result = as_admin(gateway, tmp_path, "tenant", "set-policies", unique, str(source))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nests brackets too deeply" in result.stderr


def test_bad_policy_files_are_refused_before_any_request(tmp_path: Path) -> None:
    big = tmp_path / "big.cedar"
    big.write_text("// " + "x" * (64 * 1024))
    result = offline(tmp_path, "tenant", "set-policies", "acme", str(big))
    assert result.returncode == 2
    assert_refused_before_any_request(result, "64 KiB")
    missing = offline(tmp_path, "tenant", "set-policies", "acme", str(tmp_path / "nope.cedar"))
    assert missing.returncode == 2
    assert_refused_before_any_request(missing, "cannot read")

"""`bulkhead tenant set-limits|limits` and `bulkhead key set-limits` against a real gateway."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import as_admin, as_json, assert_clean_failure, offline
from tests.support.gateway import GatewayThread


def test_set_and_show_tenant_limits(gateway: GatewayThread, tmp_path: Path, unique: str) -> None:
    gateway.tenant(unique)
    gateway.grant("admin:quota_requests.approve", unique)  # unlimited tpm, weight 3: above the tier
    out = as_json(
        gateway, tmp_path, "tenant", "set-limits", unique, "--rpm", "30", "--tpm", "none",
        "--concurrency", "4", "--tokens-per-day", "1000000", "--weight", "3", "--fail-open",
    )  # fmt: skip
    assert out["limits"]["requests_per_minute"] == {
        "value": 30,
        "source": "tenant",
        "tier_default": 600,
    }
    assert out["limits"]["tokens_per_minute"]["value"] is None
    assert out["limits"]["share_weight"]["value"] == 3
    assert out["limits_fail_open"] is True
    out = as_json(gateway, tmp_path, "tenant", "set-limits", unique, "--rpm", "default")
    assert out["limits"]["requests_per_minute"]["source"] == "tier"
    table = as_admin(gateway, tmp_path, "tenant", "limits", unique)
    assert table.returncode == 0
    assert "tokens_per_day" in table.stdout and "1000000" in table.stdout


def test_set_key_limits(gateway: GatewayThread, tmp_path: Path, unique: str) -> None:
    gateway.tenant(unique)
    created = gateway.mint(unique)
    key_id = created["key"]["id"]
    out = as_json(gateway, tmp_path, "key", "set-limits", key_id, "--tenant", unique, "--rpm", "5")
    assert out["limits"]["requests_per_minute"] == 5
    bad = as_admin(gateway, tmp_path, "key", "set-limits", key_id, "--tenant", unique, "--rpm", "x")
    assert bad.returncode == 2
    assert_clean_failure(bad, "--rpm takes N or none")


def test_nothing_to_change_is_refused_before_any_request(tmp_path: Path) -> None:
    result = offline(tmp_path, "key", "set-limits", "abc")
    assert result.returncode == 2
    assert_clean_failure(result, "name at least one limit")


def test_set_tier(gateway: GatewayThread, tmp_path: Path, unique: str) -> None:
    gateway.tenant(unique)
    out = as_json(gateway, tmp_path, "tenant", "set-tier", unique, "--tier", "mig")
    assert out["tier"] == "mig"
    shown = as_json(gateway, tmp_path, "tenant", "limits", unique)
    assert shown["limits"]["requests_per_minute"]["value"] == 3000


def test_anomaly_throttle_is_a_tenant_setting(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    out = as_json(gateway, tmp_path, "tenant", "config", unique, "--anomaly-throttle")
    assert out["anomaly_throttle"] is True
    out = as_json(gateway, tmp_path, "tenant", "config", unique, "--no-anomaly-throttle")
    assert out["anomaly_throttle"] is False

"""`bulkhead gpu plan | profiles | status` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.cli.test_cli import as_admin, as_json, assert_clean_failure, offline
from tests.support.gateway import GatewayThread, http


def gpu_plan(
    tmp_path: Path, gpu: str, profiles: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Planning is local: it runs against a server address nobody listens on."""
    return offline(tmp_path, "gpu", "plan", "--gpu", gpu, "--profiles", profiles, *extra)


def test_plan_prints_a_layout(tmp_path: Path) -> None:
    result = gpu_plan(tmp_path, "h100-80gb", "3g.40gb,2g.20gb,1g.10gb")
    assert result.returncode == 0, result.stderr
    assert "MIG layout on H100 80GB" in result.stdout
    for profile in ("3g.40gb", "2g.20gb", "1g.10gb"):
        assert profile in result.stdout
    assert "####...." in result.stdout, "the 3g.40gb's slice map"


def test_plan_as_json_and_as_mig_parted(tmp_path: Path) -> None:
    as_data = gpu_plan(tmp_path, "a100-80gb", "4g.40gb,3g.40gb", "--format", "json")
    assert as_data.returncode == 0, as_data.stderr
    (gpu,) = json.loads(as_data.stdout)["gpus"]
    placed = [(i["profile"], i["start"]) for i in gpu["instances"]]
    assert placed == [("4g.40gb", 0), ("3g.40gb", 4)]
    config = gpu_plan(
        tmp_path, "a100-80gb", "4g.40gb,3g.40gb", "--format", "mig-parted", "--name", "tenants-a"
    )
    assert config.returncode == 0, config.stderr
    entry = {"devices": [0], "mig-enabled": True, "mig-devices": {"3g.40gb": 1, "4g.40gb": 1}}
    assert yaml.safe_load(config.stdout) == {
        "version": "v1",
        "mig-configs": {"tenants-a": [entry]},
    }


def test_plan_over_several_gpus(tmp_path: Path) -> None:
    result = gpu_plan(tmp_path, "h100-80gb", "7g.80gb,3g.40gb:2", "--gpus", "2", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["gpus"]) == 2


def test_plan_exits_non_zero_naming_why_no_layout_exists(tmp_path: Path) -> None:
    result = gpu_plan(tmp_path, "h100-80gb", "4g.40gb,3g.40gb,2g.20gb")
    assert result.returncode == 1
    assert_clean_failure(result, "No MIG layout exists")
    assert "needs 10 of 8 memory slices" in result.stderr
    assert result.stdout == ""


def test_plan_refuses_unknown_models_profiles_and_formats(tmp_path: Path) -> None:
    unknown_gpu = gpu_plan(tmp_path, "v100", "1g.10gb")
    assert unknown_gpu.returncode == 1
    assert_clean_failure(unknown_gpu, "Unknown GPU model 'v100'")
    unknown_profile = gpu_plan(tmp_path, "a100-40gb", "1g.20gb")
    assert unknown_profile.returncode == 1
    assert_clean_failure(unknown_profile, "has no MIG profile '1g.20gb'")
    bad_format = gpu_plan(tmp_path, "a100-40gb", "1g.5gb", "--format", "xml")
    assert bad_format.returncode == 2
    assert "Traceback" not in bad_format.stderr


def test_profiles_lists_the_catalog(tmp_path: Path) -> None:
    result = offline(tmp_path, "gpu", "profiles", "--gpu", "h200-141gb", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["profile"] for r in rows][-1] == "7g.141gb"
    assert rows[0] == {
        "gpu": "h200-141gb",
        "profile": "1g.18gb",
        "memory": 1,
        "compute": 1,
        "max": 7,
        "starts": [0, 1, 2, 3, 4, 5, 6],
    }


# Status comes from the server --------------------------------------------------------------


def test_status_shows_the_servers_inventory(gateway: GatewayThread, tmp_path: Path) -> None:
    inventory = as_json(gateway, tmp_path, "gpu", "status")
    assert set(inventory) == {"available", "reason", "driver_version", "notes", "gpus"}
    # CI machines have no NVIDIA GPU: the server says so instead of failing.
    assert inventory["available"] is False and inventory["gpus"] == []
    result = as_admin(gateway, tmp_path, "gpu", "status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"No GPUs: {inventory['reason']}")


def test_status_is_for_platform_principals_only(gateway: GatewayThread, tmp_path: Path) -> None:
    result = as_admin(gateway, tmp_path, "gpu", "status", key=gateway.demo_key)
    assert result.returncode == 1
    assert_clean_failure(result, "error: The platform API needs a platform credential.")
    assert http("GET", f"{gateway.url}/admin/v1/gpus", gateway.demo_key).status == 403

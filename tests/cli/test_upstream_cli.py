"""`bulkhead upstream …` and `model add --credential`: a subprocess against a real gateway."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli.test_cli import BULKHEAD, as_admin, as_json, assert_clean_failure, clean_env
from tests.support.gateway import GatewayThread, UpstreamThread


def test_credentials_allowlists_and_models(
    gateway: GatewayThread, upstream: UpstreamThread, tmp_path: Path, unique: str
) -> None:
    secret = f"sk-{unique}-never-printed"
    gateway.tenant(unique)
    command = ["upstream", "credential", "add", f"{unique}-key", "--secret-stdin", "--json"]
    added = subprocess.run(
        [BULKHEAD, "--server", gateway.url, "--key", gateway.admin_key, *command],
        input=secret + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["source"] == "sealed" and secret not in added.stdout
    allowed = as_admin(
        gateway, tmp_path, "upstream", "credential", "allow", f"{unique}-key", "--tenant", unique
    )
    assert allowed.returncode == 0, allowed.stderr
    shown = as_json(gateway, tmp_path, "upstream", "credential", "show", f"{unique}-key")
    assert shown["tenants"] == [unique]
    listed = as_admin(gateway, tmp_path, "upstream", "credential", "list")
    assert f"{unique}-key" in listed.stdout and secret not in listed.stdout
    entries = ("*.Example.com", "127.0.0.1")
    got = as_json(gateway, tmp_path, "upstream", "allowlist", "set", *entries, "--tenant", unique)
    assert got["entries"] == ["*.example.com", "127.0.0.1/32"]
    assert as_json(gateway, tmp_path, "upstream", "allowlist", "show", "--tenant", unique) == got
    model = as_json(
        gateway, tmp_path, "model", "add", f"{unique}-m", "--tenant", unique,
        "--upstream", upstream.url, "--credential", f"{unique}-key",
    )  # fmt: skip
    assert model["credential"] == f"{unique}-key"
    busy = as_admin(gateway, tmp_path, "upstream", "credential", "delete", f"{unique}-key")
    assert busy.returncode == 1
    assert_clean_failure(busy, "used by 1 deployment")


def test_env_credentials_refuse_the_platforms_own_variables(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    refused = as_admin(
        gateway,
        tmp_path,
        "upstream",
        "credential",
        "add",
        unique,
        "--env",
        "BULKHEAD_KMS_MASTER_KEY",
    )
    assert refused.returncode == 1
    assert_clean_failure(refused, "kept for the platform")
    made = as_json(gateway, tmp_path, "upstream", "credential", "add", unique, "--env", "VLLM_KEY")
    assert (made["source"], made["env"]) == ("env", "VLLM_KEY")


def test_api_key_env_is_gone(gateway: GatewayThread, tmp_path: Path) -> None:
    result = as_admin(
        gateway, tmp_path, "model", "add", "m", "--shared",
        "--upstream", "http://x.example/v1", "--api-key-env", "VLLM_KEY",
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr

"""The `bulkhead` command as a user runs it: a subprocess against a real gateway."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayThread, UpstreamThread
from tests.support.postgres import free_port

BULKHEAD = str(Path(sys.executable).parent / "bulkhead")


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without Bulkhead settings, and a fixed terminal width."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")}
    env["COLUMNS"] = "80"
    return {**env, **extra}


def bulkhead(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BULKHEAD, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env or clean_env(),
    )


def as_admin(
    gateway: GatewayThread, tmp_path: Path, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    return bulkhead("--server", gateway.url, "--key", key or gateway.admin_key, *args, cwd=tmp_path)


def as_json(gateway: GatewayThread, tmp_path: Path, *args: str) -> Any:
    result = as_admin(gateway, tmp_path, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_clean_failure(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert "Traceback" not in result.stderr + result.stdout
    assert text in result.stderr


def offline(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run against a port nobody listens on: any request would fail with "cannot reach"."""
    return bulkhead(
        "--server", f"http://127.0.0.1:{free_port()}", "--key", "bk_x", *args, cwd=tmp_path
    )


def assert_refused_before_any_request(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert_clean_failure(result, text)
    assert "cannot reach" not in result.stderr


# Tenants -----------------------------------------------------------------------------------


def test_tenant_create_list_show(gateway: GatewayThread, tmp_path: Path, unique: str) -> None:
    created = as_json(gateway, tmp_path, "tenant", "create", unique, "--tier", "mig")
    assert (created["name"], created["tier"], created["status"]) == (unique, "mig", "active")
    listed = as_json(gateway, tmp_path, "tenant", "list")
    assert created["id"] in {t["id"] for t in listed}
    shown = as_json(gateway, tmp_path, "tenant", "show", unique)
    assert shown["id"] == created["id"]


def test_tenant_show_of_a_missing_tenant_fails(gateway: GatewayThread, tmp_path: Path) -> None:
    result = as_admin(gateway, tmp_path, "tenant", "show", "no-such-tenant")
    assert result.returncode == 1
    assert_clean_failure(result, "not found")


def test_human_output_is_a_table(gateway: GatewayThread, tmp_path: Path, unique: str) -> None:
    result = as_admin(gateway, tmp_path, "tenant", "create", unique)
    assert result.returncode == 0, result.stderr
    assert unique in result.stdout and "tier" in result.stdout


# Keys --------------------------------------------------------------------------------------


def test_key_create_prints_the_secret_once(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.grant("admin:keys.create", unique)  # a key inside a tenant acts in it
    result = as_admin(gateway, tmp_path, "key", "create", "--tenant", unique, "--name", "ci")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (label,) = [n for n, x in enumerate(lines) if "secret (shown once):" in x]
    secret = lines[label + 1]
    assert result.stdout.count(secret) == 1
    (listed,) = as_json(gateway, tmp_path, "key", "list", "--tenant", unique)
    assert secret.startswith(f"bk_{listed['id']}_") and listed["name"] == "ci"
    listing = as_admin(gateway, tmp_path, "key", "list", "--tenant", unique)
    assert secret.split("_", 2)[2] not in listing.stdout + json.dumps(listed)
    assert gateway.call("GET", "/v1/models", secret).status == 200


def test_key_create_with_expiry(gateway: GatewayThread, tmp_path: Path, unique: str) -> None:
    gateway.tenant(unique)
    gateway.grant("admin:keys.create", unique)
    created = as_json(gateway, tmp_path, "key", "create", "--tenant", unique, "--expires", "30d")
    expires = datetime.fromisoformat(created["key"]["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    assert created["secret"].startswith(f"bk_{created['key']['id']}_")


def test_onboarding_first_admin_then_its_own_keys(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    """The README's tour: the tenant's first admin key, then the tenant admin issues its keys."""
    gateway.tenant(unique)
    first = as_json(
        gateway, tmp_path, "key", "create", "--tenant", unique, "--role", "tenant_admin"
    )
    again = as_admin(gateway, tmp_path, "key", "create", "--tenant", unique)
    assert again.returncode == 1 and "bulkhead access request" in again.stderr
    own = as_admin(
        gateway, tmp_path, "key", "create", "--expires", "30d", "--json", key=first["secret"]
    )
    assert own.returncode == 0, own.stderr
    created = json.loads(own.stdout)
    assert created["key"]["role"] == "end_user" and created["key"]["tenant"] == unique
    assert gateway.call("GET", "/v1/models", created["secret"]).status == 200


@pytest.mark.parametrize("expires", ["30", "30x", "-1d", "d", "1.5d", "30 days"])
def test_bad_expires_is_refused_before_any_request(tmp_path: Path, expires: str) -> None:
    result = offline(tmp_path, "key", "create", "--tenant", "acme", "--expires", expires)
    assert_refused_before_any_request(result, "--expires must look like 30d")


def test_bad_expires_exits_with_status_2(tmp_path: Path) -> None:
    result = offline(tmp_path, "key", "create", "--tenant", "acme", "--expires", "30x")
    assert result.returncode == 2


def test_revoked_key_is_refused_on_the_very_next_request(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.grant("admin:keys.create", unique)
    created = as_json(gateway, tmp_path, "key", "create", "--tenant", unique)
    secret, key_id = created["secret"], created["key"]["id"]
    assert gateway.call("GET", "/v1/models", secret).status == 200
    revoked = as_json(gateway, tmp_path, "key", "revoke", key_id)
    assert revoked["id"] == key_id and revoked["revoked_at"] is not None
    response = gateway.call("GET", "/v1/models", secret)
    assert response.status == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


# Models ------------------------------------------------------------------------------------


def test_model_add_grant_and_list(
    gateway: GatewayThread, upstream: UpstreamThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    shared, private = f"{unique}-shared", f"{unique}-private"
    added = as_json(
        gateway, tmp_path, "model", "add", shared, "--shared", "--upstream", upstream.url,
        "--upstream-model", "fake",
    )  # fmt: skip
    assert (added["shared"], added["owner"], added["upstream_model"]) == (True, None, "fake")
    owned = as_json(
        gateway, tmp_path, "model", "add", private, "--tenant", unique, "--upstream", upstream.url
    )
    assert (owned["shared"], owned["owner"]) == (False, unique)
    granted = as_json(gateway, tmp_path, "model", "grant", shared, "--tenant", unique)
    assert granted == {"model": shared, "tenant": unique, "granted": True}
    models = {m["name"]: m for m in as_json(gateway, tmp_path, "model", "list")}
    assert models[shared]["granted_to"] == [unique]
    assert models[private]["owner"] == unique and models[private]["granted_to"] == []
    visible = gateway.call("GET", "/v1/models", gateway.key(unique)).body["data"]
    assert {m["id"] for m in visible} == {shared, private}


@pytest.mark.parametrize(
    "scope",
    [pytest.param((), id="neither"), pytest.param(("--shared", "--tenant", "acme"), id="both")],
)
def test_model_add_needs_exactly_one_scope(tmp_path: Path, scope: tuple[str, ...]) -> None:
    result = offline(tmp_path, "model", "add", "m", "--upstream", "http://x/v1", *scope)
    assert_refused_before_any_request(result, "exactly one of --shared or --tenant")


def test_model_add_without_scope_exits_with_status_2(tmp_path: Path) -> None:
    result = offline(tmp_path, "model", "add", "m", "--upstream", "http://x/v1")
    assert result.returncode == 2


def test_model_grant_of_a_private_model_fails(
    gateway: GatewayThread, upstream: UpstreamThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-p", upstream.url, tenant=unique)
    result = as_admin(gateway, tmp_path, "model", "grant", f"{unique}-p", "--tenant", "demo")
    assert result.returncode == 1
    assert_clean_failure(result, "not found")


# Failures ----------------------------------------------------------------------------------


def test_tenant_key_cannot_list_tenants(gateway: GatewayThread, tmp_path: Path) -> None:
    result = as_admin(gateway, tmp_path, "tenant", "list", key=gateway.demo_key)
    assert result.returncode == 1
    assert_clean_failure(result, "error: The platform API needs a platform credential.")
    assert result.stdout == ""


def test_unreachable_server_fails_clearly(tmp_path: Path) -> None:
    result = offline(tmp_path, "tenant", "list")
    assert result.returncode == 1
    assert_clean_failure(result, "cannot reach http://127.0.0.1:")
    assert "is `bulkhead serve` running?" in result.stderr


def test_missing_credential_fails_clearly(tmp_path: Path) -> None:
    result = bulkhead("--server", "http://127.0.0.1:1", "tenant", "list", cwd=tmp_path)
    assert result.returncode == 1
    assert_clean_failure(result, "no credential")


# init --------------------------------------------------------------------------------------


def test_bad_setting_exits_2_without_a_traceback(tmp_path: Path) -> None:
    env = clean_env(BULKHEAD_DATABASE_URL="mysql://x")
    result = bulkhead("--data-dir", str(tmp_path / "d"), "init", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert_clean_failure(result, "BULKHEAD_DATABASE_URL must start with postgresql://")
    assert result.stdout == ""


def test_bad_setting_is_reported_on_one_line(tmp_path: Path) -> None:
    env = clean_env(BULKHEAD_DATABASE_URL="mysql://x")
    result = bulkhead("--data-dir", str(tmp_path / "d"), "init", cwd=tmp_path, env=env)
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", ["init", "serve"])
def test_a_data_dir_that_cannot_be_made_exits_2_on_one_line(tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = clean_env(BULKHEAD_START_WORKERS="0")
    result = bulkhead("--data-dir", str(blocker / "d"), command, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert_clean_failure(result, f"BULKHEAD_DATA_DIR {blocker / 'd'}: cannot create it")
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_superuser_database_url_is_refused_on_one_line(tmp_path: Path, pg_admin_url: str) -> None:
    env = clean_env(BULKHEAD_DATABASE_URL=pg_admin_url, BULKHEAD_START_WORKERS="0")
    result = bulkhead("--data-dir", str(tmp_path / "d"), "init", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert_clean_failure(result, "superuser or BYPASSRLS role")
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_init_twice_is_idempotent(tmp_path: Path, db_url: str, db_admin_url: str | None) -> None:
    env = clean_env(BULKHEAD_START_WORKERS="0")
    if db_url.startswith("postgresql"):
        env["BULKHEAD_DATABASE_URL"] = db_url
    if db_admin_url:
        env["BULKHEAD_DATABASE_ADMIN_URL"] = db_admin_url
    data = tmp_path / "data"
    first = bulkhead("--data-dir", str(data), "init", "--json", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert created["created"] is True and created["admin_key"].startswith("bk_")
    second = bulkhead("--data-dir", str(data), "init", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "already initialised" in second.stdout
    assert f"platform admin key:\n{created['admin_key']}\n" in second.stdout
    profile = Path(created["profile"])
    assert profile.parent == data.resolve()
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert json.loads(profile.read_text())["key"] == created["admin_key"]

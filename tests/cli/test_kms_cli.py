"""`bulkhead kms status --all` and `bulkhead kms rotate` for the platform's own keys."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import as_admin
from tests.support.gateway import GatewayThread

KINDS = ("tenant-kek", "platform-kek", "audit-signing", "ca", "cache-salt", "session-key")


def test_status_all_is_one_table_of_every_key(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    assert as_admin(gateway, tmp_path, "kms", "rotate", "--tenant", unique).returncode == 0
    table = as_admin(gateway, tmp_path, "kms", "status", "--all")
    assert table.returncode == 0, table.stderr
    for kind in KINDS:
        assert kind in table.stdout, kind
    for column in ("kind", "owner", "version", "state", "age_days", "next_rotation"):
        assert column in table.stdout, column
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    wide = as_admin(gateway, tmp_path, "kms", "status", "--all", "-o", "wide")
    assert wide.returncode == 0 and "protects" in wide.stdout and "held_in" in wide.stdout, (
        wide.stdout
    )
    for printed in (table.stdout, wide.stdout):
        assert "BEGIN" not in printed and "PRIVATE" not in printed
    bad = as_admin(gateway, tmp_path, "kms", "status", "--all", "-o", "tall")
    assert bad.returncode != 0 and "--output" in bad.stderr
    as_json = as_admin(gateway, tmp_path, "kms", "status", "--all", "--json")
    assert as_json.returncode == 0, as_json.stderr
    keys = json.loads(as_json.stdout)["data"]
    assert set(KINDS) <= {k["kind"] for k in keys}
    assert any(k["kind"] == "tenant-kek" and k["owner"] == unique for k in keys)
    assert all("age_days" in k and "next_rotation_at" in k and "protects" in k for k in keys)


def test_status_needs_a_tenant_or_all(gateway: GatewayThread, tmp_path: Path) -> None:
    for args in ((), ("--all", "--tenant", "demo")):
        wrong = as_admin(gateway, tmp_path, "kms", "status", *args)
        assert wrong.returncode == 1 and "--all" in wrong.stderr and "--tenant" in wrong.stderr


def test_rotate_the_platforms_own_keys(gateway: GatewayThread, tmp_path: Path) -> None:
    def status() -> list[dict[str, object]]:
        done = as_admin(gateway, tmp_path, "kms", "status", "--all", "--json")
        return list(json.loads(done.stdout)["data"])

    def version(kind: str, state: str) -> object:
        return next(k["version"] for k in status() if k["kind"] == kind and k["state"] == state)

    salt, kek = version("cache-salt", "active"), version("platform-kek", "primary")
    done = as_admin(gateway, tmp_path, "kms", "rotate", "--cache-salt")
    assert done.returncode == 0 and done.stdout.startswith("cache-salt rotated: version")
    done = as_admin(gateway, tmp_path, "kms", "rotate", "--platform-kek", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["kind"] == "platform-kek"
    assert version("cache-salt", "active") == int(str(salt)) + 1
    assert version("platform-kek", "primary") == int(str(kek)) + 1
    # The CA needs an approved grant, as the audit key does.
    refused = as_admin(gateway, tmp_path, "kms", "rotate", "--ca")
    assert refused.returncode != 0 and "grant" in refused.stderr.lower()
    gateway.grant("admin:kms.ca.rotate")
    assert as_admin(gateway, tmp_path, "kms", "rotate", "--ca").returncode == 0
    assert any(k["kind"] == "ca" and k["state"] == "pending" for k in status())


def test_rotate_names_one_target(gateway: GatewayThread, tmp_path: Path) -> None:
    for args in ((), ("--ca", "--cache-salt"), ("--tenant", "demo", "--platform-kek")):
        wrong = as_admin(gateway, tmp_path, "kms", "rotate", *args)
        assert wrong.returncode == 1, args
        assert "--tenant" in wrong.stderr and "--platform-kek" in wrong.stderr, wrong.stderr


def test_retire_an_old_platform_kek_version(gateway: GatewayThread, tmp_path: Path) -> None:
    def platform_keks() -> dict[int, str]:
        done = as_admin(gateway, tmp_path, "kms", "status", "--all", "--json")
        keys = json.loads(done.stdout)["data"]
        return {int(k["version"]): str(k["state"]) for k in keys if k["kind"] == "platform-kek"}

    assert as_admin(gateway, tmp_path, "kms", "rotate", "--platform-kek").returncode == 0
    old = max(platform_keks()) - 1
    args = ("kms", "retire", "--platform-kek", "--version", str(old))
    refused = as_admin(gateway, tmp_path, *args)
    assert refused.returncode != 0 and "grant" in refused.stderr.lower(), refused.stderr
    gateway.grant("admin:kms.platform.retire")
    done = as_admin(gateway, tmp_path, *args, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["retired"] == old
    assert platform_keks()[old] == "retired"
    table = as_admin(gateway, tmp_path, "kms", "status", "--all")
    assert "retired" in table.stdout and max(len(x) for x in table.stdout.splitlines()) <= 80
    # The primary is refused, and the error says why.
    gateway.grant("admin:kms.platform.retire")
    primary = as_admin(
        gateway, tmp_path, "kms", "retire", "--platform-kek", "--version", str(old + 1)
    )
    assert primary.returncode != 0 and "primary" in primary.stderr, primary.stderr


def test_retire_names_one_target(gateway: GatewayThread, tmp_path: Path) -> None:
    for args in ((), ("--tenant", "demo", "--platform-kek")):
        wrong = as_admin(gateway, tmp_path, "kms", "retire", "--version", "1", *args)
        assert wrong.returncode == 1, args
        assert "--tenant" in wrong.stderr and "--platform-kek" in wrong.stderr, wrong.stderr

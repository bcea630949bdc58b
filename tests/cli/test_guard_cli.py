"""`bulkhead tenant set-guard|guard` against a real gateway."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import as_admin, as_json, assert_refused_before_any_request, offline
from tests.support.gateway import GatewayThread


def test_set_and_show_guard(gateway: GatewayThread, tmp_path: Path, unique: str) -> None:
    gateway.tenant(unique)
    out = as_json(
        gateway, tmp_path, "tenant", "set-guard", unique, "--pii", "pseudonymize",
        "--injection", "block", "--secrets", "mask", "--entity", "card=block",
        "--entity", "email=mask", "--allow-logprobs", "--no-canary",
        "--allow-fine-tuned-logprobs",
        "--allow-host", "Docs.Example.com", "--allow-host", "*.cdn.example.net",
    )  # fmt: skip
    guard = out["guard"]
    assert (guard["pii"], guard["injection"], guard["secrets"]) == ("pseudonymize", "block", "mask")
    assert guard["entities"] == {"card": "block", "email": "mask"}
    assert (guard["allow_logprobs"], guard["canary"]) == (True, False)
    assert guard["allow_fine_tuned_logprobs"] is True
    assert guard["allowed_link_hosts"] == ["*.cdn.example.net", "docs.example.com"]
    out = as_json(gateway, tmp_path, "tenant", "set-guard", unique, "--entity", "email=default")
    assert out["guard"]["entities"] == {"card": "block"}
    assert "scan_output" not in out["set"]

    table = as_admin(gateway, tmp_path, "tenant", "guard", unique)
    assert table.returncode == 0, table.stderr
    assert "pseudonymize" in table.stdout and "card=block" in table.stdout
    assert "default" in table.stdout and "tenant" in table.stdout


def test_server_side_validation_is_reported(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    bad = as_admin(gateway, tmp_path, "tenant", "set-guard", unique, "--allow-host", "not a host")
    assert bad.returncode == 1
    assert "not a host name" in bad.stderr and "Traceback" not in bad.stderr
    missing = as_admin(gateway, tmp_path, "tenant", "guard", "no-such-tenant")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_bad_options_are_refused_before_any_request(tmp_path: Path) -> None:
    for args, text in (
        (("--pii", "shred"), "--pii takes off|detect|mask|redact|pseudonymize|block"),
        (("--injection", "redact"), "--injection takes off|flag|block"),
        (("--entity", "card"), "--entity takes ENTITY=ACTION"),
        (("--entity", "card=burn"), "--entity takes"),
        ((), "name at least one guard setting"),
    ):
        result = offline(tmp_path, "tenant", "set-guard", "acme", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert_refused_before_any_request(result, text)

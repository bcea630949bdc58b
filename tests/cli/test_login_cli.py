"""`bulkhead login` / `logout`: a person's session as the CLI's credential, kept in the profile."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

from bulkhead.identity import totp
from tests.cli.test_cli import BULKHEAD, clean_env
from tests.integration.test_sign_in import PASSWORD, enroll, person
from tests.support.gateway import GatewayThread


def run(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The CLI with its profile in `data`; the password and codes arrive on stdin, not a TTY."""
    return subprocess.run(
        [BULKHEAD, "--data-dir", str(data), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        start_new_session=True,  # No controlling terminal: nothing is read from /dev/tty.
    )


def profile_with_admin_key(gateway: GatewayThread, data: Path) -> Path:
    data.mkdir()
    path = data / "profile.json"
    path.write_text(json.dumps({"url": gateway.url, "key": gateway.admin_key}))
    path.chmod(0o600)
    return path


def saved(path: Path) -> Any:
    return json.loads(path.read_text())


def test_login_keeps_the_session_and_logout_ends_it(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "alice", ["end_user"])
    path = profile_with_admin_key(gateway, tmp_path / "d")
    assert run(tmp_path / "d", "tenant", "list").returncode == 0  # The admin key.
    signed = run(
        tmp_path / "d", "login", "--tenant", unique, "--principal", "alice", stdin=PASSWORD + "\n"
    )
    assert signed.returncode == 0, signed.stderr
    assert f"signed in as {unique}/alice (end_user)" in signed.stdout
    token = saved(path)["session"]
    assert token.startswith("bks_") and token not in signed.stdout + signed.stderr
    assert PASSWORD not in signed.stdout + signed.stderr
    assert saved(path)["key"] == gateway.admin_key  # Kept for after logout.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert gateway.call("GET", "/v1/models", token).status == 200
    # The session, not the admin key, is the credential now: an end user lists no tenants.
    refused = run(tmp_path / "d", "tenant", "list")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr

    out = run(tmp_path / "d", "logout")
    assert out.returncode == 0, out.stderr
    assert "signed out" in out.stdout
    assert "session" not in saved(path) and saved(path)["key"] == gateway.admin_key
    assert gateway.call("GET", "/v1/models", token).status == 401
    assert run(tmp_path / "d", "tenant", "list").returncode == 0  # The admin key again.
    again = run(tmp_path / "d", "logout")
    assert again.returncode == 1 and "not signed in" in again.stderr


def test_login_asks_for_a_code_when_the_server_wants_one(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "bob", ["tenant_admin"])
    secret, codes = enroll(gateway, unique, "bob")
    path = profile_with_admin_key(gateway, tmp_path / "d")
    code = totp.totp(secret, time.time() + 30)
    asked = run(
        tmp_path / "d",
        "login",
        "--tenant",
        unique,
        "--principal",
        "bob",
        "--json",
        stdin=f"{PASSWORD}\n{code}\n",
    )
    assert asked.returncode == 0, asked.stderr
    assert "One-time code" in asked.stderr
    result = json.loads(asked.stdout)
    assert (result["role"], result["mfa"]) == ("tenant_admin", True)
    assert gateway.call("GET", "/tenant/v1/tenant", saved(path)["session"]).status == 200
    # A recovery code given as --totp is sent as one.
    flag = run(
        tmp_path / "d",
        "login",
        "--tenant",
        unique,
        "--principal",
        "bob",
        "--totp",
        codes[0],
        stdin=PASSWORD + "\n",
    )
    assert flag.returncode == 0, flag.stderr
    assert "One-time code" not in flag.stderr


def test_a_wrong_password_fails_cleanly_and_saves_nothing(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "carl", ["end_user"])
    path = profile_with_admin_key(gateway, tmp_path / "d")
    wrong = run(
        tmp_path / "d", "login", "--tenant", unique, "--principal", "carl", stdin="nope nope nope\n"
    )
    assert wrong.returncode == 1
    assert "Incorrect tenant, principal or password" in wrong.stderr
    assert "Traceback" not in wrong.stderr and "session" not in saved(path)


def test_logout_of_an_ended_session_still_clears_the_profile(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "dora", ["end_user"])
    path = profile_with_admin_key(gateway, tmp_path / "d")
    args = ("login", "--tenant", unique, "--principal", "dora")
    assert run(tmp_path / "d", *args, stdin=PASSWORD + "\n").returncode == 0
    token = saved(path)["session"]
    assert gateway.call("POST", "/auth/v1/logout", token).status == 200  # Ended elsewhere.
    out = run(tmp_path / "d", "logout")
    assert out.returncode == 0 and "already ended" in out.stdout
    assert "session" not in saved(path)

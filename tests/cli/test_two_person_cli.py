"""Two people, end to end, through the `bulkhead` command alone (issue 13, point 2).

Nothing here imports Bulkhead: every step is a `bulkhead …` subprocess, as a
new operator would type it after reading the README.  `bulkhead init` makes
admin A; A creates auditor C and admin B with `bulkhead admin create`; B and
C enrol with `bulkhead login --enrol` (their TOTP codes computed here from the
authenticator URI the CLI prints, per RFC 6238); each person keeps their own
CLI profile (their own data dir and HOME).  Then, for deleting a tenant,
retiring a KEK version and rotating the audit key: A asks, A's own approval is
refused, B approves, A acts, and the grant is used up.  C exports the audit
log and verifies it offline, and the bundle shows each request, refusal,
approval and use.  The whole flow runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.postgres import app_url, create_database

BULKHEAD = str(Path(sys.executable).parent / "bulkhead")
PASSWORD = "correct horse battery staple"
TIMEOUT_S = 60
ENROL = ("login", "--enrol", "--secret-stdin", "--principal")


def totp_code(uri: str, at: float) -> str:
    """RFC 6238 TOTP (HMAC-SHA-1 unless the URI says otherwise) from an otpauth:// URI."""
    query = parse_qs(urlsplit(uri).query)
    raw = query["secret"][0]
    key = base64.b32decode(raw.upper() + "=" * (-len(raw) % 8))
    digits, period = int(query.get("digits", ["6"])[0]), int(query.get("period", ["30"])[0])
    digest = getattr(hashlib, query.get("algorithm", ["SHA1"])[0].lower())
    mac = hmac.new(key, struct.pack(">Q", int(at) // period), digest).digest()
    offset = mac[-1] & 0x0F  # RFC 4226 §5.3: dynamic truncation
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Person:
    """One operator: their own CLI profile (data dir) and HOME."""

    name: str
    home: Path
    env: dict[str, str]
    url: str

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BULKHEAD, "--server", self.url, "--data-dir", str(self.home), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=self.env,
            start_new_session=True,  # no controlling terminal: nothing read from /dev/tty
        )

    def ok(self, *args: str) -> Any:
        done = self.run(*args, "--json")
        assert done.returncode == 0, (self.name, args, done.stdout, done.stderr)
        return json.loads(done.stdout)

    def refused(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode != 0, (self.name, args, done.stdout)
        assert "Traceback" not in done.stderr + done.stdout
        return " ".join(done.stderr.split())  # the table and error renderer wrap lines


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")}
    return {**env, "HOME": str(home), "COLUMNS": "200", "BULKHEAD_START_WORKERS": "0", **extra}


@pytest.fixture(params=["sqlite", "postgresql"])
def server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """What `bulkhead init` and `serve` need to find the store (nothing for SQLite)."""
    if request.param == "sqlite":
        return {}
    admin = create_database(
        request.getfixturevalue("pg_admin_url"), f"two_person_{uuid.uuid4().hex[:12]}"
    )
    return {"BULKHEAD_DATABASE_URL": app_url(admin), "BULKHEAD_DATABASE_ADMIN_URL": admin}


@pytest.fixture
def platform(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Person]:
    """`bulkhead init` then `bulkhead serve` in a throwaway data dir: admin A, from init."""
    data, port = tmp_path / "server", free_port()
    url = f"http://127.0.0.1:{port}"
    env = base_env(tmp_path, **server_env)
    init = subprocess.run(
        [BULKHEAD, "--data-dir", str(data), "init", "--url", url, "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
    )
    assert init.returncode == 0, init.stderr
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [BULKHEAD, "--data-dir", str(data), "serve", "--port", str(port), "--metrics-port", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        _wait_healthy(url, serve, tmp_path / "serve.log")
        yield Person("A", data, base_env(tmp_path), url)
    finally:
        serve.terminate()
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(10)
        log.close()


def _wait_healthy(url: str, serve: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        assert serve.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"bulkhead serve did not come up: {log.read_text()}")


def person(tmp_path: Path, name: str, url: str) -> Person:
    home = tmp_path / name
    home.mkdir(mode=0o700)
    return Person(name, home, base_env(home), url)


def enrol(who: Person, secret: str) -> None:
    """`bulkhead login --enrol`, driven as a person would."""
    proc = subprocess.Popen(
        [BULKHEAD, "--server", who.url, "--data-dir", str(who.home), *ENROL, who.name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=who.env,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(secret + "\n")
        proc.stdin.flush()
        uri = _read_uri(proc)
        out, err = proc.communicate(
            f"{PASSWORD}\n{totp_code(uri, time.time())}\n", timeout=TIMEOUT_S
        )
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (out, err)
    assert secret not in out + err and PASSWORD not in out + err
    assert f"signed in as {who.name}" in out and "recovery codes" in out, out


def _read_uri(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(
                f"no authenticator URI: {proc.stderr.read() if proc.stderr else ''}"
            )
        if line.startswith("otpauth://"):
            return line.strip()
    raise AssertionError("no authenticator URI in time")


def two_person(a: Person, b: Person, action: str, target: str) -> str:
    """A asks; A's own approval is refused; B approves: the request's id."""
    asked = a.ok(
        "access", "request", "--action", action, "--target", target, "--reason", "ticket OPS-42"
    )
    assert asked["status"] == "pending", asked
    own = a.refused("access", "approve", asked["id"])
    assert "cannot approve your own access request" in own, own
    approved = b.ok("access", "approve", asked["id"])
    assert approved["status"] == "approved", approved
    return str(asked["id"])


def onboard(a: Person, b: Person, c: Person) -> dict[str, Any]:
    """A, alone, creates auditor C then admin B; each enrols: the principals, by name."""
    made_c = a.ok("admin", "create", "carol", "--role", "platform_auditor")
    made_b = a.ok(
        "admin", "create", "bob", "--role", "platform_admin", "--email", "bob@example.com"
    )
    shown = a.run("admin", "show", "bob").stdout
    assert made_b["enrolment_secret"] not in shown  # shown once, at creation only
    enrol(b, made_b["enrolment_secret"])
    enrol(c, made_c["enrolment_secret"])
    enrol_again = ("login", "--enrol", "--principal", "carol", "--secret-stdin")
    again = c.run(*enrol_again, stdin=made_c["enrolment_secret"] + "\n")
    assert again.returncode != 0 and "enrolment secret" in again.stderr  # used once
    listed = {p["name"]: p for p in a.ok("admin", "list")}
    assert listed["bob"]["enrolled"] and listed["carol"]["enrolled"]
    # With two admins, adding anyone is itself privileged.
    dave = a.refused("admin", "create", "dave", "--role", "platform_auditor")
    assert "bulkhead access request" in dave, dave
    return listed


def delete_a_tenant(a: Person, b: Person, c: Person) -> str:
    a.ok("tenant", "create", "doomed")
    assert "bulkhead access request" in a.refused("tenant", "delete", "doomed", "--yes")
    deletion = two_person(a, b, "admin:tenants.delete", "doomed")
    assert "may not perform 'admin:access.approve'" in c.refused("access", "approve", deletion)
    assert a.ok("tenant", "delete", "doomed", "--yes")["deleted"] is True
    a.ok("tenant", "create", "doomed")  # the same name again: the grant was for the old one
    assert "bulkhead access request" in a.refused("tenant", "delete", "doomed", "--yes")
    return deletion


def retire_a_kek(a: Person, b: Person) -> str:
    a.ok("tenant", "create", "keyed")
    assert a.ok("kms", "rotate", "--tenant", "keyed")["primary_version"] == 2
    retire = ("kms", "retire", "--tenant", "keyed", "--version")
    assert "bulkhead access request" in a.refused(*retire, "1")
    retirement = two_person(a, b, "admin:kms.retire", "keyed")
    retired = a.ok(*retire, "1")
    assert [v["retired_at"] is not None for v in retired["versions"]] == [True, False]
    a.ok("kms", "rotate", "--tenant", "keyed")
    assert "bulkhead access request" in a.refused(*retire, "2")  # used up
    return retirement


def rotate_the_audit_key(a: Person, b: Person, c: Person) -> str:
    before = c.ok("audit", "public-key")
    assert "bulkhead access request" in a.refused("audit", "rotate-key")
    rotation = two_person(a, b, "admin:audit.keys.rotate", "platform")
    a.ok("audit", "rotate-key")
    assert "bulkhead access request" in a.refused("audit", "rotate-key")  # used up
    after = c.ok("audit", "public-key")
    assert set(before["verifiers"]) < set(after["verifiers"])  # old checkpoints still verify
    return rotation


def test_two_people_delete_retire_and_rotate_through_the_cli_alone(
    platform: Person, tmp_path: Path
) -> None:
    a = platform
    b, c = person(tmp_path, "bob", a.url), person(tmp_path, "carol", a.url)
    listed = onboard(a, b, c)
    requests = (delete_a_tenant(a, b, c), retire_a_kek(a, b), rotate_the_audit_key(a, b, c))
    used = {r["id"]: r["status"] for r in a.ok("access", "list")}
    assert [used[r] for r in requests] == ["used"] * 3
    # The auditor: export, verify offline, and find each step on the record.
    bundle = _verified_bundle(c, tmp_path)
    for request_id in requests:
        steps = {e["action"]: e for e in bundle if e.get("resource") == request_id}
        for step in ("request.create", "request.self_approval", "request.approve", "grant.use"):
            assert f"pam.{step}" in steps, (request_id, step, sorted(steps))
        assert steps["pam.request.self_approval"]["outcome"] == "failure"
        assert steps["pam.request.self_approval"]["principal_id"] == listed["admin"]["id"]
        assert steps["pam.request.approve"]["principal_id"] == listed["bob"]["id"]
    done = {(e["action"], e["status"]) for e in bundle}
    for action in ("admin:tenants.delete", "admin:kms.retire", "admin:audit.keys.rotate"):
        assert (action, 200) in done and (action, 403) in done, action


def _verified_bundle(c: Person, tmp_path: Path) -> list[dict[str, Any]]:
    """C exports the log and verifies it offline with the keys it fetched: its events."""
    keys, path = tmp_path / "verifiers.txt", tmp_path / "bundle.json"
    c.ok("audit", "public-key", "-o", str(keys))
    time.sleep(1.5)  # the next signed checkpoint covers every step above
    exported = c.ok("audit", "export", "-o", str(path))
    assert exported["entries"] > 0 and exported["checkpoints"] > 0
    verdict = c.ok("audit", "verify", str(path), "--public-key", str(keys), "--full")
    assert verdict["verified"] is True and verdict["signed_entries"] > 0, verdict
    entries = json.loads(path.read_text())["entries"]
    return [json.loads(e["body"]) for e in entries]

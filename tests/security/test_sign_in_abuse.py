"""Anonymous clients against /auth/v1 and sign-in sessions (issue 12, items 11, 13, 18, 24).

Each test attacks a real gateway as an anonymous client would.  Clients are
told apart by their source address: the whole of 127.0.0.0/8 reaches the
gateway's loopback listener, so `source="127.0.0.2"` is another client to
the per-client limits.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bulkhead.identity import totp
from bulkhead.identity.sessions import SessionKey, SessionKeys, issue_session
from tests.integration.test_sign_in import secret_of
from tests.integration.test_tls import _server_cert
from tests.support.gateway import GatewayThread
from tests.support.redis_server import RedisServer, redis_server

PASSWORD = "correct horse battery staple"
WRONG = "not the right password"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def code(self) -> str | None:
        error = (self.body or {}).get("error") if isinstance(self.body, dict) else None
        return error.get("code") if error else None


def call(
    gw: GatewayThread,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    source: str = "127.0.0.1",
    ctx: ssl.SSLContext | None = None,
) -> Answer:
    """One request from `source`, over TLS when the gateway serves it (with `ctx`)."""
    if gw.url.startswith("https"):
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", gw.port, context=ctx or tls_client(gw), timeout=60,
            source_address=(source, 0),
        )  # fmt: skip
    else:
        conn = http.client.HTTPConnection(
            "127.0.0.1", gw.port, timeout=60, source_address=(source, 0)
        )
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    parsed = json.loads(payload) if payload else None
    hdrs = {k.lower(): v for k, v in response.getheaders()}
    return Answer(response.status, parsed, hdrs, elapsed)


def tls_client(gw: GatewayThread, cert_dir: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(gw.server_cert))  # type: ignore[attr-defined]
    if cert_dir is not None:
        ctx.load_cert_chain(str(cert_dir / "client.pem"), str(cert_dir / "client.key"))
    return ctx


def who(tenant: str | None, principal: str, password: str = PASSWORD, **extra: Any) -> Any:
    body = {"principal": principal, "password": password, **extra}
    if tenant is not None:
        body["tenant"] = tenant
    return body


def login(gw: GatewayThread, tenant: str | None, principal: str, **kw: Any) -> Answer:
    password = kw.pop("password", PASSWORD)
    return call(gw, "POST", "/auth/v1/login", who(tenant, principal, password), **kw)


def admin(gw: GatewayThread, method: str, path: str, body: Any = None) -> Answer:
    return call(gw, method, path, body, token=gw.admin_key)


def must(gw: GatewayThread, method: str, path: str, body: Any = None) -> Any:
    answer = admin(gw, method, path, body)
    assert answer.status < 300, (method, path, answer.status, answer.body)
    return answer.body


def person(gw: GatewayThread, tenant: str, name: str) -> None:
    must(
        gw, "POST", f"/admin/v1/tenants/{tenant}/principals", {"name": name, "roles": ["end_user"]}
    )
    gw.hold("admin:principals.password.set", tenant)
    must(
        gw, "PUT", f"/admin/v1/tenants/{tenant}/principals/{name}/password", {"password": PASSWORD}
    )


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    """Plain HTTP, SQLite, the default body limit; sign-in on a pool of 2 with a queue of 4."""
    # tests/support/gateway.py lifts the sign-in rate limits: the pool is what is tested.
    env = {"BULKHEAD_SIGNIN_WORKERS": "2", "BULKHEAD_SIGNIN_QUEUE": "4"}
    gw = GatewayThread(tmp_path_factory.mktemp("plain") / "data", None, env=env).start()
    must(gw, "POST", "/admin/v1/tenants", {"name": "acme"})
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = _server_cert(directory)
    env = {"BULKHEAD_TLS_CERT": str(cert), "BULKHEAD_TLS_KEY": str(key)}
    gw = GatewayThread(directory / "data", None, env=env)
    gw.server_cert = cert  # type: ignore[attr-defined]
    yield gw.start()
    gw.stop()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


# Item 11: bodies, rates and the thread pool ----------------------------------------------------


def test_sign_in_bodies_are_bounded_before_they_are_read(plain: GatewayThread) -> None:
    padded = who("acme", "alice", **{"totp": "1" * 8}) | {"principal": "a" * 60_000}
    big = call(plain, "POST", "/auth/v1/login", padded)
    assert big.status == 413 and big.code == "payload_too_large", big.body
    # A client that announces 8 MiB and sends a trickle is answered at once, not waited for.
    with socket.create_connection(("127.0.0.1", plain.port), timeout=5) as sock:
        sock.sendall(
            b"POST /auth/v1/mfa/enroll HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 8388608\r\n\r\n" + b"{" * 1024
        )
        sock.settimeout(5)
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:80]
    events = [e for e in plain.audit_events() if "mfa" in e["action"]]
    assert events and events[-1]["status"] == 413


def test_sign_in_attempts_are_limited_per_client_and_in_all(
    tmp_path_factory: pytest.TempPathFactory, redis: RedisServer
) -> None:
    """Two replicas on one Redis: 3 attempts a minute per client and 8 in all, together."""
    env = {
        "BULKHEAD_SIGNIN_CLIENT_RPM": "3",
        "BULKHEAD_SIGNIN_RPM": "8",
        "BULKHEAD_REDIS_URL": redis.url,
    }
    a = GatewayThread(tmp_path_factory.mktemp("ra") / "data", None, env=env).start()
    b = GatewayThread(tmp_path_factory.mktemp("rb") / "data", None, env=env).start()
    try:
        for gw in (a, b):
            must(gw, "POST", "/admin/v1/tenants", {"name": "acme"})
            person(gw, "acme", "alice")
        first = [login(gw, "acme", "alice", password=WRONG, source="127.0.0.2") for gw in (a, b)]
        assert [r.status for r in first] == [401, 401]
        assert login(a, "acme", "alice", password=WRONG, source="127.0.0.2").status == 401
        # The fourth attempt of this client, on either replica: refused before any work,
        # and the right password does not get through either (no oracle while limited).
        for gw in (b, a):
            refused = login(gw, "acme", "alice", source="127.0.0.2")
            assert refused.status == 429, refused.body
            assert int(refused.headers["retry-after"]) >= 1
        enroll = call(b, "POST", "/auth/v1/mfa/enroll", who("acme", "alice"), source="127.0.0.2")
        assert enroll.status == 429
        assert login(a, "acme", "alice", source="127.0.0.3").status == 200  # another client
        # Many clients, one attempt each: the limit in all cuts them off.
        statuses = [
            login(a if i % 2 else b, "acme", "nobody", source=f"127.0.1.{i}").status
            for i in range(1, 10)
        ]
        assert 429 in statuses and statuses.index(429) <= 4, statuses
        assert login(b, "acme", "alice", source="127.0.0.4").status == 429
        limited = [
            e for e in a.audit_events() if e["action"] == "auth:login" and e["status"] == 429
        ]
        assert limited and all(e["reason"].startswith("sign_in_rate_limited") for e in limited)
    finally:
        a.stop()
        b.stop()


def _median_admin_call(gw: GatewayThread, samples: int) -> tuple[float, float]:
    times = []
    for _ in range(samples):
        answer = admin(gw, "GET", "/admin/v1/tenants")
        assert answer.status == 200
        times.append(answer.elapsed)
        time.sleep(0.05)
    return statistics.median(times), max(times)


@pytest.mark.serial
def test_bogus_sign_ins_do_not_starve_the_control_plane(plain: GatewayThread) -> None:
    quiet = _median_admin_call(plain, 5)
    stop = threading.Event()
    outcomes: list[Answer] = []

    def attacker(n: int) -> None:
        while not stop.is_set():
            outcomes.append(login(plain, "acme", f"ghost{n}", source=f"127.0.2.{n + 1}"))

    threads = [threading.Thread(target=attacker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        median, worst = _median_admin_call(plain, 10)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    busy = [r for r in outcomes if r.status == 429]
    print(f"admin call quiet {quiet[0]:.3f}s; under 16 bogus sign-in loops {median:.3f}s median,")
    print(f"{worst:.3f}s worst; {len(outcomes)} sign-ins, {len(busy)} refused busy")
    assert median < 0.5 and worst < 1.5, (median, worst)
    # The sign-in queue is bounded: overflow is refused at once, not queued.
    assert busy and max(r.elapsed for r in busy) < 1.0
    assert {r.code for r in busy} == {"passwords_busy"}
    assert all(r.status in (401, 429) for r in outcomes)


# Item 13: junk session tokens ------------------------------------------------------------------


def forged_session() -> str:
    """A well-formed session token, its id signed with a key the attacker made up."""
    theirs = SessionKeys([SessionKey.generate(1, datetime.now(UTC))])
    return issue_session(theirs, datetime.now(UTC) + timedelta(hours=1)).token


def _junk_flood(gw: GatewayThread, stop: threading.Event, seen: list[int]) -> None:
    while not stop.is_set():
        seen.append(
            call(gw, "GET", "/v1/models", token=forged_session(), source="127.0.0.2").status
        )


def test_junk_session_tokens_do_not_lock_out_valid_sessions(plain: GatewayThread) -> None:
    person(plain, "acme", "sam")
    cached = login(plain, "acme", "sam", source="127.0.0.3").body["token"]
    assert call(plain, "GET", "/v1/models", token=cached, source="127.0.0.3").status == 200
    # Tokens that are not well-formed cost no read.
    reads: list[str] = []

    def record(*args: Any) -> None:
        if "sign_in_sessions" in str(args[2]):
            reads.append(str(args[2]))

    event.listen(plain.app.db.engine, "before_cursor_execute", record)
    old_format = "bks_" + "a" * 16 + "_" + "x" * 43  # Sessions signed in before ids had tags.
    stop, seen = threading.Event(), []
    flood = threading.Thread(target=_junk_flood, args=(plain, stop, seen))
    try:
        for junk in ("bks_", "bks_" + "a" * 16, "bks_" + "A" * 16 + "_" + "x" * 43, "bks_x_y"):
            assert call(plain, "GET", "/v1/models", token=junk, source="127.0.0.4").status == 401
        assert call(plain, "GET", "/v1/models", token=old_format, source="127.0.0.4").status == 401
        assert reads == []
        flood.start()
        deadline = time.monotonic() + 60
        while len(seen) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Well-formed junk is refused as any incorrect token, neither read nor counted: there
        # is no budget for it to empty (it used to get 429 once a budget ran out).
        assert reads == [] and len(seen) >= 300 and set(seen) == {401}
        must(plain, "POST", "/admin/v1/tenants", {"name": "other"})  # A catalog change.
        # A cached session, now to be re-read, is not refused: not from its own client,
        # and not from the flooding one.
        for source in ("127.0.0.3", "127.0.0.2"):
            again = call(plain, "GET", "/v1/models", token=cached, source=source)
            assert again.status == 200, (source, again.body)
        # A session never seen before, from another client, is read and works.
        fresh = login(plain, "acme", "sam", source="127.0.0.5").body["token"]
        first_use = call(plain, "GET", "/v1/models", token=fresh, source="127.0.0.5")
        assert first_use.status == 200, first_use.body
    finally:
        event.remove(plain.app.db.engine, "before_cursor_execute", record)
        stop.set()
        if flood.is_alive():
            flood.join(30)


# Item 18: a locked account looks like any failed sign-in -------------------------------------


def _interleaved(attempts: dict[str, Callable[[], Answer]], rounds: int) -> dict[str, list[Answer]]:
    """Each kind of attempt in turn, so that a change in the machine's load hits all alike."""
    answers: dict[str, list[Answer]] = {kind: [] for kind in attempts}
    for _ in range(rounds):
        for kind, attempt in attempts.items():
            answers[kind].append(attempt())
    return answers


def test_a_locked_account_answers_like_an_unknown_one(plain: GatewayThread) -> None:
    person(plain, "acme", "lena")
    for n in range(4):
        person(plain, "acme", f"walt{n}")
    for _ in range(5):
        assert login(plain, "acme", "lena", password=WRONG).status == 401
    # lena is locked now: her right password, unknown people and wrong passwords all
    # look the same (walt0..3 each take at most three wrong passwords: none gets locked).
    walts = iter([f"walt{n % 4}" for n in range(12)])
    answers = _interleaved(
        {
            "locked": lambda: login(plain, "acme", "lena"),
            "unknown": lambda: login(plain, "acme", f"x{secrets.token_hex(4)}"),
            "wrong": lambda: login(plain, "acme", next(walts), password=WRONG),
        },
        rounds=12,
    )
    median = {kind: statistics.median(a.elapsed for a in got) for kind, got in answers.items()}
    print("median seconds:", {kind: round(t, 4) for kind, t in median.items()})
    expected = answers["unknown"][0].body
    for answer in (a for got in answers.values() for a in got):
        assert answer.status == 401 and answer.body == expected, answer.body
        assert "retry-after" not in answer.headers
    bound = max(0.25 * median["unknown"], 0.02)
    assert abs(median["locked"] - median["unknown"]) < bound, median
    assert abs(median["wrong"] - median["unknown"]) < bound, median
    # The lock still holds inside, and the audit log says why.
    lena = [e for e in plain.audit_events() if e.get("resource") == "lena"]
    assert [e["reason"] for e in lena[-12:]] == ["invalid_credentials:account locked"] * 12
    must(plain, "PUT", "/admin/v1/tenants/acme/principals/lena/password", {"password": PASSWORD})
    assert login(plain, "acme", "lena").status == 200


# Item 24: tenants that require client certificates ---------------------------------------------


def _issue(gw: GatewayThread, tenant: str, directory: Path) -> Path:
    body = must(gw, "POST", f"/admin/v1/tenants/{tenant}/client-certs", {})
    directory.mkdir()
    (directory / "client.pem").write_text(body["certificate"])
    (directory / "client.key").write_text(body["private_key"])
    return directory


def test_sign_in_needs_the_tenants_client_certificate(tls: GatewayThread, tmp_path: Path) -> None:
    for name in ("vault", "elsewhere"):
        must(tls, "POST", "/admin/v1/tenants", {"name": name})
    person(tls, "vault", "vic")
    must(tls, "PATCH", "/admin/v1/tenants/vault/config", {"require_client_cert": True})
    own = tls_client(tls, _issue(tls, "vault", tmp_path / "own"))
    foreign = tls_client(tls, _issue(tls, "elsewhere", tmp_path / "foreign"))
    wrong = login(tls, "vault", "vic", password=WRONG)
    assert wrong.status == 401
    # Without the tenant's certificate, the right password is a wrong one (no oracle) ...
    for ctx in (None, foreign):
        for _ in range(6):  # ... and so many tries do not lock the account either.
            refused = login(tls, "vault", "vic", ctx=ctx)
            assert (refused.status, refused.body) == (401, wrong.body)
        # Nobody without the certificate can enrol an authenticator or confirm one.
        body = who("vault", "vic")
        enroll = call(tls, "POST", "/auth/v1/mfa/enroll", body, ctx=ctx)
        assert (enroll.status, enroll.body) == (401, wrong.body)
        confirm = call(tls, "POST", "/auth/v1/mfa/confirm", {**body, "totp": "123456"}, ctx=ctx)
        assert (confirm.status, confirm.body) == (401, wrong.body)
    events = [e for e in tls.audit_events() if e["action"].startswith("auth:")]
    assert events[-1]["reason"].startswith("invalid_credentials:client certificate")
    # With it, everything works as before.
    signed = login(tls, "vault", "vic", ctx=own)
    assert signed.status == 200, signed.body
    models = call(tls, "GET", "/v1/models", token=signed.body["token"], ctx=own)
    assert models.status == 200
    started = call(tls, "POST", "/auth/v1/mfa/enroll", who("vault", "vic"), ctx=own)
    assert started.status == 200, started.body
    code = totp.totp(secret_of(started.body["otpauth_uri"]), time.time())
    confirm_body = {**who("vault", "vic"), "totp": code}
    confirmed = call(tls, "POST", "/auth/v1/mfa/confirm", confirm_body, ctx=own)
    assert confirmed.status == 200, confirmed.body


def test_sign_in_from_outside_the_tenants_networks_is_refused(plain: GatewayThread) -> None:
    """The same class as client certificates: the tenant's own rule on where it is reached from."""
    must(plain, "POST", "/admin/v1/tenants", {"name": "walled"})
    person(plain, "walled", "nell")
    must(
        plain, "PUT", "/admin/v1/tenants/walled/attributes", {"allowed_networks": ["127.0.7.0/24"]}
    )
    wrong = login(plain, "walled", "nell", password=WRONG, source="127.0.7.1")
    assert wrong.status == 401
    for _ in range(6):  # The right password from outside: a wrong one, and no lockout.
        outside = login(plain, "walled", "nell", source="127.0.0.9")
        assert (outside.status, outside.body) == (401, wrong.body)
    body = who("walled", "nell")
    enroll = call(plain, "POST", "/auth/v1/mfa/enroll", body, source="127.0.0.9")
    assert (enroll.status, enroll.body) == (401, wrong.body)
    nell = [e for e in plain.audit_events() if e.get("resource") == "nell"]
    assert nell[-1]["reason"] == "invalid_credentials:client address outside allowed_networks"
    inside = login(plain, "walled", "nell", source="127.0.7.2")
    assert inside.status == 200, inside.body

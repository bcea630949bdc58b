"""Platform principals through the API (issue 13, point 1): every rule, attacked.

Who holds a platform role is itself privileged; an enrolment secret is a
credential (one use, constant-time, expiring, rate limited, never stored or
audited in the clear) that enrols nobody else; nobody mints another admin's
key, changes its own roles or removes the last active admin; disabling a
principal ends its keys and sessions at once, on every replica.  Each test
runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bulkhead.identity import totp
from bulkhead.store.schema import AuditEntryRow, EnrolmentRow
from tests.conftest import BACKENDS, database_urls
from tests.integration.test_sign_in import secret_of
from tests.security.test_sign_in_abuse import call
from tests.support.gateway import GatewayThread, Response

P = "/admin/v1/principals"
PASSWORD = "a passphrase of my very own"
CREATE = "admin:platform_principals.create"


def create(gw: GatewayThread, name: str, *roles: str, key: str | None = None, **extra: Any) -> Any:
    return gw.admin("POST", P, {"name": name, "roles": list(roles), **extra}, key=key)


def refused(response: Response) -> bool:
    error = (response.body or {}).get("error") or {}
    return response.status == 403 and error.get("code") == "privileged_access_required"


def start(gw: GatewayThread, name: str, secret: str) -> Response:
    return gw.call("POST", "/auth/v1/enrol", None, {"principal": name, "enrolment_secret": secret})


def finish(gw: GatewayThread, name: str, secret: str, seed: bytes, **extra: Any) -> Response:
    body = {"principal": name, "enrolment_secret": secret, "password": PASSWORD}
    body |= {"totp": totp.totp(seed, time.time()), **extra}
    return gw.call("POST", "/auth/v1/enrol/confirm", None, body)


def enrol(gw: GatewayThread, name: str, secret: str, **extra: Any) -> dict[str, Any]:
    """Enrol as `name` with its secret: its session token, recovery codes and TOTP seed."""
    started = start(gw, name, secret)
    assert started.status == 200, started.body
    seed = secret_of(started.body["otpauth_uri"])
    finished = finish(gw, name, secret, seed, **extra)
    assert finished.status == 200, finished.body
    return {**finished.body, "seed": seed}


def new_admin(gw: GatewayThread, name: str) -> str:
    """A second platform admin, enrolled, through the API: its session token."""
    gw.grant(CREATE, f"{name}:platform_admin")  # a grant to add an admin names the role
    made = create(gw, name, "platform_admin")
    assert made.status == 201, made.body
    return str(enrol(gw, name, made.body["enrolment_secret"])["token"])


def ask(gw: GatewayThread, action: str, target: str, key: str | None = None) -> str:
    body = {"action": action, "target": target, "reason": "a test of two-person approval"}
    made = gw.admin("POST", "/admin/v1/access-requests", body, key=key)
    assert made.status == 201, made.body
    return str(made.body["id"])


def approve(gw: GatewayThread, request_id: str, key: str | None) -> Response:
    return gw.admin("POST", f"/admin/v1/access-requests/{request_id}/approve", key=key)


@pytest.fixture(autouse=True)
def _peer(request: pytest.FixtureRequest) -> None:
    """In the shared gateway, a second admin (the grants' approver) exists from the start."""
    if "gateway" in request.fixturenames:
        request.getfixturevalue("gateway").approver_key()


@pytest.fixture(params=BACKENDS)
def lone(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayThread]:
    """A platform fresh from `init`: one admin, who holds only its key."""
    url, admin = database_urls(request.param, request)
    gw = GatewayThread(tmp_path / "data", url, admin_url=admin).start()
    yield gw
    gw.stop()


# Adding and removing who holds a platform role ---------------------------------------------------


def test_a_lone_admin_adds_principals_then_needs_a_second_admins_approval(
    lone: GatewayThread,
) -> None:
    auditor = create(lone, "audrey", "platform_auditor", email="audrey@example.com")
    assert auditor.status == 201, auditor.body
    assert auditor.body["enrolment_secret"].startswith("bke_")
    assert (auditor.body["enrolled"], auditor.body["status"]) == (False, "active")
    # Two admins at once from the lone admin: the second finds it is no longer alone.
    with ThreadPoolExecutor(2) as pool:
        made = list(pool.map(lambda n: create(lone, n, "platform_admin"), ("bob", "bea")))
    assert sorted(r.status for r in made) == [201, 403], [r.body for r in made]
    winner = next(r for r in made if r.status == 201).body
    assert refused(next(r for r in made if r.status == 403))
    assert refused(create(lone, "carl", "platform_auditor"))  # two admins now: a grant
    sole = [e for e in lone.audit_events() if e["action"] == "admin:platform_principals.create"]
    assert [e["reason"] for e in sole if e["status"] == 201] == [
        "no_grant_needed:sole_platform_admin"
    ] * 2
    bob = enrol(lone, winner["name"], winner["enrolment_secret"])["token"]
    request = ask(lone, CREATE, "carl")
    own = approve(lone, request, None)
    assert own.status == 403 and own.body["error"]["code"] == "self_approval"
    assert approve(lone, request, bob).status == 200
    assert create(lone, "carl", "platform_auditor").status == 201
    assert refused(create(lone, "cora", "platform_auditor"))  # the grant named carl, once
    assert lone.must("GET", f"/admin/v1/access-requests/{request}")["status"] == "used"


def expire(gw: GatewayThread, principal_id: str) -> None:
    """Let a principal's enrolment secret run out (as 72 hours unused would)."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with gw.app.db.platform_transaction() as session:
        session.execute(
            update(EnrolmentRow)
            .where(EnrolmentRow.principal_id == principal_id)
            .values(expires_at=past)
        )


def test_an_admin_who_never_enrolled_stops_counting_once_its_secret_expires(
    lone: GatewayThread,
) -> None:
    made = create(lone, "bob", "platform_admin").body
    assert refused(create(lone, "carl", "platform_auditor"))  # bob may still enrol and approve
    expire(lone, made["id"])
    # Bob can never approve anything now: the lone admin is alone again, and can clean up.
    assert create(lone, "carl", "platform_auditor").status == 201
    assert start(lone, "bob", made["enrolment_secret"]).status == 401
    gone = lone.admin("DELETE", f"{P}/bob")
    assert gone.status == 200, gone.body
    again = create(lone, "bob", "platform_admin")
    assert again.status == 201 and again.body["id"] != made["id"]


def test_platform_role_changes_need_a_grant(gateway: GatewayThread, unique: str) -> None:
    name, other = f"{unique}-a", f"{unique}-b"
    assert refused(create(gateway, name, "platform_auditor"))
    gateway.grant(CREATE, name)
    made = create(gateway, name, "platform_auditor")
    assert made.status == 201, made.body
    roles = f"{P}/{name}/roles"
    both = {"roles": ["platform_admin", "platform_auditor"]}
    assert refused(gateway.admin("PUT", roles, both))  # adding platform_admin
    gateway.grant("admin:platform_principals.roles.set", f"{name}:platform_admin")
    assert gateway.admin("PUT", roles, both).status == 200
    # Removing platform_admin is privileged too; removing the auditor role is not.
    assert refused(gateway.admin("PUT", roles, {"roles": ["platform_auditor"]}))
    dropped = gateway.admin("PUT", roles, {"roles": ["platform_admin"]})
    assert dropped.status == 200 and dropped.body["roles"] == ["platform_admin"], dropped.body
    for method, path in (("POST", f"{P}/{name}/disable"), ("DELETE", f"{P}/{name}")):
        assert refused(gateway.admin(method, path)), path  # an admin now
    key = {"role": "platform_admin"}
    minted = gateway.admin("POST", f"{P}/{name}/keys", key)
    assert minted.status == 403 and "own principal" in minted.body["error"]["message"]
    # An auditor: its key for another is a grant; disabling it takes access away.
    gateway.grant(CREATE, other)
    assert create(gateway, other, "platform_auditor").status == 201
    assert refused(gateway.admin("POST", f"{P}/{other}/keys", {"role": "platform_auditor"}))
    gateway.grant("admin:platform_principals.keys.create", other)
    assert gateway.admin("POST", f"{P}/{other}/keys", {"role": "platform_auditor"}).status == 201
    assert gateway.admin("POST", f"{P}/{other}/disable").status == 200
    assert refused(gateway.admin("POST", f"{P}/{other}/enable"))  # gives its role back
    reasons = {
        e["reason"]
        for e in gateway.audit_events()
        if e.get("resource") == other and e.get("reason")
    }
    assert "no_grant_needed:not_a_platform_admin" in reasons


def test_no_principal_changes_itself_and_the_last_admin_stays(lone: GatewayThread) -> None:
    me = lone.must("GET", P)["data"][0]["name"]
    for method, path, body in (
        ("PUT", f"{P}/{me}/roles", {"roles": ["platform_auditor"]}),
        ("PUT", f"{P}/{me}/roles", {"roles": ["platform_admin", "platform_auditor"]}),
        ("POST", f"{P}/{me}/disable", None),
        ("DELETE", f"{P}/{me}", None),
    ):
        answer = lone.admin(method, path, body)
        assert answer.status == 403 and "yourself" in answer.body["error"]["message"], path
    # Two admins that each hold a grant to disable the other, at once: one stays.
    made = create(lone, "bob", "platform_admin").body
    bob = enrol(lone, "bob", made["enrolment_secret"])["token"]
    them = ask(lone, "admin:platform_principals.disable", "bob")
    us = ask(lone, "admin:platform_principals.disable", me, key=bob)
    assert approve(lone, them, bob).status == 200 and approve(lone, us, None).status == 200
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(lone.admin, "POST", f"{P}/bob/disable")
        b = pool.submit(lone.admin, "POST", f"{P}/{me}/disable", None, bob)
        answers = [a.result(), b.result()]
    assert sorted(r.status for r in answers)[0] == 200, [r.body for r in answers]
    assert [r.status for r in answers].count(200) == 1, [r.body for r in answers]
    loser = next(r for r in answers if r.status != 200)
    # Refused as the last admin, or disabled, or with its grant ended by being disabled.
    assert loser.status in (401, 403, 409), loser.body
    # Whichever won is the one admin left: only its credential still works.
    survivor = None if answers[0].status == 200 else bob
    listed = lone.admin("GET", P, key=survivor)
    assert listed.status == 200, listed.body
    active = [p for p in listed.body["data"] if p["status"] == "active"]
    assert [p["roles"] for p in active] == [["platform_admin"]]
    assert active[0]["name"] == ("bob" if survivor else me)
    loser_key = bob if survivor is None else None
    assert lone.admin("GET", P, key=loser_key).status == 401


# Disabling ends every credential at once, on every replica --------------------------------------


@pytest.fixture(params=BACKENDS)
def replicas(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[GatewayThread, GatewayThread]]:
    url, admin = database_urls(request.param, request)
    first = GatewayThread(tmp_path / "data", url, admin_url=admin).start()
    url = url or f"sqlite:///{tmp_path / 'data' / 'bulkhead.db'}"
    second = GatewayThread(tmp_path / "data", url, admin_url=admin).start()
    yield first, second
    second.stop()
    first.stop()


def _until_refused(gw: GatewayThread, token: str, limit_s: float) -> float:
    started = time.monotonic()
    while gw.call("GET", P, token).status != 401:
        assert time.monotonic() - started < limit_s, "still accepted"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.serial
def test_disabling_revokes_keys_and_sessions_at_once_on_every_replica(
    replicas: tuple[GatewayThread, GatewayThread],
) -> None:
    first, second = replicas
    made = create(first, "audrey", "platform_auditor").body  # the lone admin: no grant
    enrolled = enrol(first, "audrey", made["enrolment_secret"])
    session = enrolled["token"]
    key = first.must("POST", f"{P}/audrey/keys", {"role": "platform_auditor"})["secret"]
    second.app.catalog.reload()
    for gw in (first, second):
        for credential in (session, key):
            assert gw.call("GET", P, credential).status == 200
    disabled = first.must("POST", f"{P}/audrey/disable")
    assert disabled["status"] == "disabled" and len(disabled["revoked_keys"]) == 1
    for credential in (session, key):
        assert first.call("GET", P, credential).status == 401  # this replica: the next request
        assert _until_refused(second, credential, 3.0) < 3.0  # the other: within its poll
    # Signing in and enrolling again are refused alike; enabling leaves the old key revoked.
    login = {
        "principal": "audrey",
        "password": PASSWORD,
        "recovery_code": enrolled["recovery_codes"][0],
    }
    assert first.call("POST", "/auth/v1/login", None, login).status == 401
    assert start(first, "audrey", made["enrolment_secret"]).status == 401
    assert first.admin("POST", f"{P}/audrey/enable").status == 200
    assert first.call("GET", P, key).status == 401
    again = first.call("POST", "/auth/v1/login", None, login)
    assert again.status == 200, again.body
    assert first.call("GET", P, again.body["token"]).status == 200


def test_a_dropped_role_ends_its_keys_and_sessions(gateway: GatewayThread, unique: str) -> None:
    name = f"{unique}-x"
    gateway.grant(CREATE, f"{name}:platform_admin")
    made = create(gateway, name, "platform_admin", "platform_auditor")
    assert made.status == 201, made.body
    admin = enrol(gateway, name, made.body["enrolment_secret"], role="platform_admin")["token"]
    own = gateway.admin("POST", f"{P}/{name}/keys", {"role": "platform_admin"}, key=admin)
    assert own.status == 201, own.body
    assert own.body["key"]["principal_id"] == made.body["id"]  # bound to its principal
    assert gateway.call("GET", "/admin/v1/tenants", own.body["secret"]).status == 200
    gateway.grant("admin:platform_principals.roles.set", name)
    dropped = gateway.admin("PUT", f"{P}/{name}/roles", {"roles": ["platform_auditor"]})
    assert dropped.status == 200, dropped.body
    for credential in (admin, own.body["secret"]):
        assert gateway.call("GET", "/admin/v1/tenants", credential).status == 401


# The enrolment secret is a credential -----------------------------------------------------------


def test_an_enrolment_secret_enrols_once_its_own_principal_only(
    gateway: GatewayThread, unique: str
) -> None:
    names = [f"{unique}-{n}" for n in ("a", "b", "c")]
    secrets = {}
    for name in names:
        gateway.grant(CREATE, name)
        made = create(gateway, name, "platform_auditor", enrolment_expires_in_s=300)
        assert made.status == 201, made.body
        secrets[name] = made.body["enrolment_secret"]
    a, b, c = names
    answers = [
        start(gateway, a, secrets[b]),  # another principal's secret
        start(gateway, a, secrets[a][:-1] + ("A" if secrets[a][-1] != "A" else "B")),
        start(gateway, a, "bke_" + "x" * 43),
        start(gateway, f"{unique}-nobody", secrets[a]),
        start(gateway, "admin", secrets[a]),  # the init admin: no enrolment to take
        start(gateway, "approver", secrets[a]),
    ]
    bodies = {str(r.body) for r in answers}
    assert {r.status for r in answers} == {401} and len(bodies) == 1, bodies
    # Expired: the same answer.
    expire(gateway, gateway.must("GET", f"{P}/{c}")["id"])
    assert str(start(gateway, c, secrets[c]).body) in bodies
    # Used: once, and never again; the principal it enrolled is not enrolled again.
    enrol(gateway, a, secrets[a])
    assert str(start(gateway, a, secrets[a]).body) in bodies
    reasons = [
        e["reason"]
        for e in gateway.audit_events()
        if e["action"] == "auth:enrol" and e["status"] == 401
    ]
    for why in ("wrong secret", "unknown principal", "no enrolment pending", "expired"):
        assert f"invalid_enrolment:{why}" in reasons, (why, reasons)


def test_two_enrolments_with_one_secret_leave_one_owner(
    gateway: GatewayThread, unique: str
) -> None:
    name = f"{unique}-twice"
    gateway.grant(CREATE, name)
    secret = create(gateway, name, "platform_auditor").body["enrolment_secret"]
    seed = secret_of(start(gateway, name, secret).body["otpauth_uri"])
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: finish(gateway, name, secret, seed), range(4)))
    assert sorted(r.status for r in answers)[0] == 200
    assert [r.status for r in answers].count(200) == 1, [r.body for r in answers]
    # A second start replaces the authenticator the first began: its codes no longer enrol.
    other = f"{unique}-restart"
    gateway.grant(CREATE, other)
    secret = create(gateway, other, "platform_auditor").body["enrolment_secret"]
    first = secret_of(start(gateway, other, secret).body["otpauth_uri"])
    second = secret_of(start(gateway, other, secret).body["otpauth_uri"])
    assert finish(gateway, other, secret, first).status == 401
    assert finish(gateway, other, secret, second).status == 200


def test_the_enrolment_secret_is_kept_and_audited_only_as_a_hash(
    gateway: GatewayThread, unique: str
) -> None:
    name = f"{unique}-h"
    gateway.grant(CREATE, name)
    made = create(gateway, name, "platform_auditor").body
    secret = made["enrolment_secret"]
    enrolled = enrol(gateway, name, secret)
    shown = gateway.must("GET", f"{P}/{name}")
    assert "enrolment_secret" not in shown and shown["enrolled"] is True
    gateway.app.audit.flush()
    with gateway.app.db.platform_transaction() as session:
        bodies = b"".join(session.execute(select(AuditEntryRow.body)).scalars())
    for value in (secret, PASSWORD, enrolled["token"], *enrolled["recovery_codes"]):
        assert value.encode() not in bodies
    events = [e for e in gateway.audit_events() if e.get("resource") == name]
    create_event = next(e for e in gateway.audit_events() if e.get("object_id") == made["id"])
    assert create_event["action"] == CREATE
    assert {e["action"] for e in events} >= {"auth:enrol", "auth:enrol.confirm"}
    assert all(e["principal_id"] == made["id"] for e in events if e["action"].startswith("auth:"))


def test_enrolment_is_bounded_like_sign_in(tmp_path: Path) -> None:
    env = {"BULKHEAD_SIGNIN_CLIENT_RPM": "3", "BULKHEAD_SIGNIN_RPM": "1000"}
    gw = GatewayThread(tmp_path / "data", None, env=env).start()
    try:
        secret = create(gw, "audrey", "platform_auditor").body["enrolment_secret"]
        guess = {"principal": "audrey", "enrolment_secret": "bke_" + "y" * 43}
        statuses = [
            call(gw, "POST", "/auth/v1/enrol", guess, source="127.0.0.7").status for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429], statuses
        # Limited before any work: the right secret does not get through either.
        right = {"principal": "audrey", "enrolment_secret": secret}
        assert call(gw, "POST", "/auth/v1/enrol", right, source="127.0.0.7").status == 429
        assert call(gw, "POST", "/auth/v1/enrol", right, source="127.0.0.8").status == 200
        padded = {**right, "principal": "a" * 20_000}
        assert call(gw, "POST", "/auth/v1/enrol", padded, source="127.0.0.9").status == 413
    finally:
        gw.stop()


# Access requests name principals, never a tenant of the same name --------------------------------


def test_a_grant_on_a_principal_never_lands_in_a_tenants_view(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)  # a tenant and a platform principal of one name
    request = ask(gateway, CREATE, unique)
    approve(gateway, request, gateway.approver_key())
    assert create(gateway, unique, "platform_auditor").status == 201
    tid = gateway.must("GET", f"/admin/v1/tenants/{unique}")["id"]
    mine = [
        e
        for e in gateway.audit_events()
        if e.get("resource") == request or e.get("action", "").startswith(CREATE)
    ]
    assert mine and all(tid not in (e.get("tenant_id"), e.get("target_tenant")) for e in mine)

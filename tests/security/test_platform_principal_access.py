"""Platform principals (issue 13, point 1), continued: who may touch them, and what is bounded.

An auditor or a tenant admin changes no platform principal; a disabled one
neither enrols nor enables itself; names and addresses are bounded before
any grant is asked for; platform roles sign in only with a second factor;
every change is audited.  Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time

import pytest

from bulkhead.identity import totp
from tests.security.test_platform_principals import (
    CREATE,
    PASSWORD,
    P,
    create,
    enrol,
    new_admin,
    start,
)
from tests.support.gateway import GatewayThread

# Who may touch the platform's principals at all -------------------------------------------------


def auditor_with_key(gw: GatewayThread, name: str) -> str:
    """A platform auditor made through the API (under grants): its own API key."""
    gw.grant(CREATE, name)
    assert create(gw, name, "platform_auditor").status == 201
    gw.grant("admin:platform_principals.keys.create", name)
    made = gw.admin("POST", f"{P}/{name}/keys", {"role": "platform_auditor"})
    assert made.status == 201, made.body
    return str(made.body["secret"])


def test_an_auditor_and_a_tenant_admin_change_no_principal(
    gateway: GatewayThread, unique: str
) -> None:
    auditor = auditor_with_key(gateway, f"{unique}-aud")
    gateway.tenant(unique)
    tenant_admin = gateway.key(unique, role="tenant_admin")
    me = f"{unique}-aud"
    writes = [
        ("POST", P, {"name": f"{unique}-new", "roles": ["platform_auditor"]}),
        ("POST", f"{P}/{me}/keys", {"role": "platform_auditor"}),
        ("POST", f"{P}/approver/keys", {"role": "platform_admin"}),
        ("PUT", f"{P}/{me}/roles", {"roles": ["platform_admin", "platform_auditor"]}),
        ("POST", f"{P}/approver/disable", None),
        ("POST", f"{P}/{me}/enable", None),
        ("DELETE", f"{P}/approver", None),
    ]
    for method, path, body in writes:
        for who, key in (("auditor", auditor), ("tenant admin", tenant_admin)):
            answer = gateway.call(method, path, key, body)
            assert answer.status == 403, (who, method, path, answer.body)
    # An auditor reads who holds a platform role; a tenant admin does not even that.
    assert gateway.call("GET", P, auditor).status == 200
    assert gateway.call("GET", P, tenant_admin).status == 403
    # The tenant surface has no read of one principal: a 405, whether the name is a platform
    # principal's or nobody's (it says nothing of who exists).
    for name in (me, f"{unique}-nobody"):
        seen = gateway.call("GET", f"/tenant/v1/principals/{name}", tenant_admin)
        assert seen.status == 405 and seen.body["error"]["code"] == "method_not_allowed"
    names = {p["name"] for p in gateway.must("GET", P)["data"]}
    assert f"{unique}-new" not in names


def test_a_disabled_principal_neither_enrols_nor_enables_itself(
    gateway: GatewayThread, unique: str
) -> None:
    name = f"{unique}-late"
    gateway.grant(CREATE, name)
    secret = create(gateway, name, "platform_auditor").body["enrolment_secret"]
    assert gateway.must("POST", f"{P}/{name}/disable")["enrolled"] is False
    assert start(gateway, name, secret).status == 401  # disabled before it enrolled
    gateway.grant("admin:platform_principals.enable", name)
    assert gateway.must("POST", f"{P}/{name}/enable")["status"] == "active"
    assert start(gateway, name, secret).status == 401  # disabling ended the secret for good
    # An admin, disabled, cannot call anything with its own key: enabling itself included.
    admin = f"{unique}-adm"
    token = new_admin(gateway, admin)
    key = gateway.admin("POST", f"{P}/{admin}/keys", {"role": "platform_admin"}, key=token)
    assert key.status == 201, key.body
    gateway.grant("admin:platform_principals.disable", admin)
    assert gateway.must("POST", f"{P}/{admin}/disable")["status"] == "disabled"
    for credential in (token, key.body["secret"]):
        again = gateway.call("POST", f"{P}/{admin}/enable", credential)
        assert again.status == 401, again.body
        asked = gateway.call(
            "POST",
            "/admin/v1/access-requests",
            credential,
            {"action": "admin:platform_principals.enable", "target": admin, "reason": "me again"},
        )
        assert asked.status == 401, asked.body
    assert gateway.must("GET", f"{P}/{admin}")["status"] == "disabled"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "a\x00b"),
        ("name", "a\nb"),
        ("name", "bob\n"),
        ("name", "\x1b[31mred"),
        ("name", "a" * 129),
        ("name", "-leading"),
        ("name", "al ice"),
        ("name", "ålice"),
        ("name", ""),
        ("email", "a@b.c\r\nBcc: x@y.example"),
        ("email", "not-an-address"),
        ("email", "x" * 250 + "@a.example"),
    ],
)
def test_names_and_addresses_are_bounded(gateway: GatewayThread, field: str, value: str) -> None:
    """A bad name or address is a 400 naming the field, with or without a grant to ask for."""
    body = {"name": "fine-name", "roles": ["platform_auditor"], field: value}
    answer = gateway.admin("POST", P, body)
    assert answer.status == 400, answer.body
    assert answer.body["error"]["param"] in (field, f"body.{field}"), answer.body
    assert "fine-name" not in {p["name"] for p in gateway.must("GET", P)["data"]}


def test_platform_roles_sign_in_only_with_a_second_factor(
    gateway: GatewayThread, unique: str
) -> None:
    name = f"{unique}-mfa"
    gateway.grant(CREATE, name)
    enrolled = enrol(
        gateway, name, create(gateway, name, "platform_auditor").body["enrolment_secret"]
    )
    login = {"principal": name, "password": PASSWORD}
    bare = gateway.call("POST", "/auth/v1/login", None, login)
    assert bare.status == 401 and bare.body["error"]["code"] == "mfa_required", bare.body
    code = totp.totp(enrolled["seed"], time.time() + 30)
    signed = gateway.call("POST", "/auth/v1/login", None, {**login, "totp": code})
    assert signed.status == 200 and signed.body["mfa"] is True, signed.body
    # Enrolling without a valid code sets nothing.
    other = f"{unique}-nocode"
    gateway.grant(CREATE, other)
    secret = create(gateway, other, "platform_auditor").body["enrolment_secret"]
    assert start(gateway, other, secret).status == 200
    body = {"principal": other, "enrolment_secret": secret, "password": PASSWORD, "totp": "000000"}
    assert gateway.call("POST", "/auth/v1/enrol/confirm", None, body).status == 401
    assert gateway.must("GET", f"{P}/{other}")["enrolled"] is False


def test_every_change_of_a_platform_principal_is_audited(
    gateway: GatewayThread, unique: str
) -> None:
    name = f"{unique}-log"
    auditor_with_key(gateway, name)
    ident = gateway.must("GET", f"{P}/{name}")["id"]
    for step, method, path, body in (
        ("roles.set", "PUT", f"{P}/{name}/roles", {"roles": ["platform_auditor"]}),
        ("disable", "POST", f"{P}/{name}/disable", None),
        ("enable", "POST", f"{P}/{name}/enable", None),
        ("delete", "DELETE", f"{P}/{name}", None),
    ):
        gateway.grant(f"admin:platform_principals.{step}", name)
        assert gateway.admin(method, path, body).status == 200, step
    mine = [e for e in gateway.audit_events() if e["action"].startswith("admin:platform_princ")]
    # A creation names what it made by id; every later change names the principal.
    done = {
        (e["action"], e["status"]) for e in mine if name in json.dumps(e) or ident in e.values()
    }
    for step in ("create", "keys.create", "roles.set", "disable", "enable", "delete"):
        wanted = 201 if step in ("create", "keys.create") else 200
        assert (f"admin:platform_principals.{step}", wanted) in done, (step, done)
    # A refused change is on the record too.
    assert gateway.admin("DELETE", f"{P}/approver").status == 403
    refusals = [e for e in gateway.audit_events() if e.get("resource") == "approver"]
    assert any(e["status"] == 403 for e in refusals), refusals

"""Review of issue 13 (platform principals), as an attacker: each finding, attacked.

Every test here failed on the merged code before its fix (see the review's report).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from rich.console import Console

from bulkhead.cli import output
from bulkhead.domain import Role
from tests.security.test_platform_principals import (  # noqa: F401
    CREATE,
    _peer,
    create,
    lone,
    refused,
)
from tests.support.gateway import GatewayThread

P = "/admin/v1/principals"
SET_ROLES = "admin:platform_principals.roles.set"


def _own_key(gw: GatewayThread, key: str | None, **body: object) -> tuple[int, dict[str, object]]:
    made = gw.admin("POST", f"{P}/admin/keys", {"role": "platform_admin", **body}, key=key)
    return made.status, made.body


def test_an_expiring_admin_key_mints_nothing_that_outlives_it(
    lone: GatewayThread,  # noqa: F811
) -> None:
    status, short = _own_key(lone, None, expires_in_s=600)
    assert status == 201, short
    short_key, short_exp = str(short["secret"]), short["key"]["expires_at"]  # type: ignore[index]
    # With no expiry asked for, the new key inherits the minting key's own.
    status, body = _own_key(lone, short_key)
    assert status == 201, body
    assert body["key"]["expires_at"] == short_exp  # type: ignore[index]
    # A later expiry than its own is refused, naming the field.
    status, body = _own_key(lone, short_key, expires_in_s=86400)
    assert status == 400 and body["error"]["param"] == "expires_in_s", body  # type: ignore[index]
    # A shorter one is fine.
    status, body = _own_key(lone, short_key, expires_in_s=60)
    assert status == 201, body
    got = datetime.fromisoformat(str(body["key"]["expires_at"]))  # type: ignore[index]
    assert got <= datetime.fromisoformat(str(short_exp))


def test_an_expiring_admin_key_makes_no_principal_that_outlives_it(
    lone: GatewayThread,  # noqa: F811
) -> None:
    """A new principal's enrolment secret is a password for life: an expiring key makes none."""
    status, short = _own_key(lone, None, expires_in_s=600)
    assert status == 201, short
    key = str(short["secret"])
    for role in ("platform_admin", "platform_auditor"):
        made = create(lone, f"persist-{role}", role, key=key)
        assert made.status == 403, made.body
    # The unrestricted bootstrap key still can.
    assert create(lone, "audrey", "platform_auditor").status == 201


def test_an_expiring_admin_key_mints_no_tenant_key_that_outlives_it(
    lone: GatewayThread,  # noqa: F811
    unique: str,
) -> None:
    """The same bound where a platform admin mints a tenant's first admin key."""
    status, short = _own_key(lone, None, expires_in_s=600)
    assert status == 201, short
    key, exp = str(short["secret"]), short["key"]["expires_at"]  # type: ignore[index]
    lone.must("POST", "/admin/v1/tenants", {"name": unique})
    path = f"/admin/v1/tenants/{unique}/keys"
    later = lone.admin("POST", path, {"role": "tenant_admin", "expires_in_s": 86400}, key=key)
    assert later.status == 400 and later.body["error"]["param"] == "expires_in_s", later.body
    made = lone.admin("POST", path, {"role": "tenant_admin"}, key=key)
    assert made.status == 201, made.body
    assert made.body["key"]["expires_at"] == exp


def test_break_glass_adds_nobody_to_the_platform_but_may_take_away(
    gateway: GatewayThread, unique: str
) -> None:
    """One alerted emergency must not leave a lasting second admin (or auditor) behind."""
    reason = "emergency access for the on-call engineer"

    def glass(action: str, target: str) -> int:
        body = {"action": action, "target": target, "reason": reason, "break_glass": True}
        return gateway.admin("POST", "/admin/v1/access-requests", body).status

    for step in ("create", "roles.set", "enable", "keys.create"):
        assert glass(f"admin:platform_principals.{step}", f"{unique}-x") == 403, step
    assert glass(CREATE, f"{unique}-x:platform_admin") == 403
    for step in ("disable", "delete"):
        assert glass(f"admin:platform_principals.{step}", f"{unique}-x") == 201, step


# The CLI: text from the server never reaches the terminal as control characters ------------

ESCAPE = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u202e"


def test_field_names_from_the_server_are_shown_not_obeyed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response's own field names become column names when a command names none."""
    monkeypatch.setattr(output, "console", Console(width=80, color_system=None))
    row = {f"limit{ESCAPE}": 1, "a-rather-long-identifier-field": "x" * 70}
    for data in (row, [row, row]):  # one object as field lines; a list as a table
        output.emit(data, False)
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\u202e" not in out, repr(out)
        assert "\\x1b" in out


def test_a_secret_and_its_label_from_the_server_are_shown_not_obeyed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output.secret(f"secret (until {ESCAPE})", f"bke_abc{ESCAPE}\nforged line")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out, repr(out)
    assert len(out.splitlines()) == 2  # the label, then the secret alone on one line


# A grant names the admin role it gives ----------------------------------------------------------


def test_a_grant_approved_for_an_auditor_makes_no_admin(
    gateway: GatewayThread, unique: str
) -> None:
    """An approver who let `unique` be added as an auditor did not let it be made an admin:
    the creator holds the new principal's enrolment secret, so an admin made this way
    would be a second admin identity under one person, approving its own requests."""
    gateway.grant(CREATE, unique)
    made = create(gateway, unique, "platform_admin")
    assert refused(made), made.body
    assert f"--target {unique}:platform_admin" in made.body["error"]["message"]
    assert create(gateway, unique, "platform_admin", "platform_auditor").status == 403
    assert create(gateway, unique, "platform_auditor").status == 201  # what was approved
    roles = f"{P}/{unique}/roles"
    gateway.grant(SET_ROLES, unique)
    assert refused(gateway.admin("PUT", roles, {"roles": ["platform_admin"]}))
    gateway.grant(SET_ROLES, f"{unique}:platform_admin")
    promoted = gateway.admin("PUT", roles, {"roles": ["platform_admin"]})
    assert promoted.status == 200, promoted.body
    # Taking the admin role away names the principal alone.
    back = gateway.admin("PUT", roles, {"roles": ["platform_auditor"]})
    assert back.status == 200, back.body


def test_a_grant_for_the_admin_role_names_a_principal_and_that_role_only(
    gateway: GatewayThread, unique: str
) -> None:
    for target in (f"{unique}:platform_auditor", f"{unique}:", "x:platform_admin:platform_admin"):
        body = {"action": CREATE, "target": target, "reason": "a test of grant targets"}
        made = gateway.admin("POST", "/admin/v1/access-requests", body)
        assert made.status == 400 and made.body["error"]["param"] == "target", made.body


def test_a_principal_made_an_admin_meanwhile_is_not_removed_without_a_grant(
    lone: GatewayThread,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether a removal needs a grant is decided before the write lock; under it, the
    principal is an admin (promoted meanwhile, here simulated): the grant is needed."""
    from bulkhead.admin.platform import operators as principals
    from tests.security.test_platform_principals import enrol

    made = create(lone, "bob", "platform_admin")
    assert made.status == 201, made.body
    enrol(lone, "bob", made.body["enrolment_secret"])  # two active admins now

    async def seen_before(self: object, name: str) -> frozenset[Role]:
        return frozenset({Role.PLATFORM_AUDITOR})

    monkeypatch.setattr(principals._Targets, "held", seen_before)
    assert refused(lone.admin("POST", f"{P}/bob/disable"))
    assert refused(lone.admin("DELETE", f"{P}/bob"))
    demoted = lone.admin("PUT", f"{P}/bob/roles", {"roles": ["platform_auditor"]})
    assert refused(demoted), demoted.body
    assert lone.must("GET", f"{P}/bob")["status"] == "active"


def test_an_admin_holding_only_an_auditor_key_does_not_count_as_one(
    lone: GatewayThread,  # noqa: F811
) -> None:
    """It can approve nothing: counted, it would leave the sole admin needing a grant
    nobody can give, even to remove it."""
    from tests.security.test_platform_principals import expire

    made = create(lone, "bob", "platform_admin", "platform_auditor").body
    expire(lone, made["id"])  # bob can no longer enrol: the lone admin is alone again
    key = lone.admin("POST", f"{P}/bob/keys", {"role": "platform_auditor"})
    assert key.status == 201, key.body  # so it needs no grant for this
    assert create(lone, "carl", "platform_auditor").status == 201  # alone again
    assert lone.admin("DELETE", f"{P}/bob").status == 200


def test_an_email_address_carries_no_control_or_bidi_characters(
    lone: GatewayThread,  # noqa: F811
) -> None:
    for local in ("a\u202eb", "a\x85b", "a\u2066b", "a\u200fb"):
        made = create(lone, "audrey", "platform_auditor", email=f"{local}@example.com")
        assert made.status == 400 and made.body["error"]["param"] == "email", made.body
    assert create(lone, "audrey", "platform_auditor", email="audrey@example.com").status == 201


def test_a_disabled_or_demoted_admin_brings_no_grant_back(
    gateway: GatewayThread, unique: str
) -> None:
    """Enabling a principal again, or giving it the admin role back, was approved as that:
    not as every grant and request it held before."""
    from tests.security.test_platform_principals import approve, ask, new_admin

    gateway.tenant(unique)
    for step, undo in (
        ("disable", ("POST", "enable", None)),
        ("roles", ("PUT", "roles", {"roles": ["platform_admin"]})),
    ):
        name = f"{unique}-{step}"
        token = new_admin(gateway, name)
        granted = ask(gateway, "admin:tenants.delete", unique, key=token)
        assert approve(gateway, granted, None).status == 200
        pending = ask(gateway, "admin:tenants.delete", unique, key=token)
        if step == "disable":
            gateway.grant("admin:platform_principals.disable", name)
            assert gateway.admin("POST", f"{P}/{name}/disable").status == 200
        else:
            gateway.grant(SET_ROLES, name)
            demoted = gateway.admin("PUT", f"{P}/{name}/roles", {"roles": ["platform_auditor"]})
            assert demoted.status == 200, demoted.body
        for request in (granted, pending):
            assert gateway.must("GET", f"/admin/v1/access-requests/{request}")["status"] == (
                "expired"
            ), step
        method, path, body = undo
        target = name if step == "disable" else f"{name}:platform_admin"
        gateway.grant(
            f"admin:platform_principals.{'enable' if step == 'disable' else 'roles.set'}", target
        )
        assert gateway.admin(method, f"{P}/{name}/{path}", body).status == 200
        for request in (granted, pending):
            assert gateway.must("GET", f"/admin/v1/access-requests/{request}")["status"] == (
                "expired"
            ), step

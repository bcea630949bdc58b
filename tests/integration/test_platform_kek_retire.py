"""`POST /admin/v1/keys/platform-kek/versions/{version}/retire`: the platform KEK's old versions.

After a rotation re-wrapped every platform secret, the old version is retired
through the API like a tenant's: only under a grant another platform admin
approved (single-use), never the primary, never while anything still uses
it, never by an auditor or a tenant.  `kms status --all` shows it retired.
"""

from __future__ import annotations

import re
from typing import Any

from bulkhead.crypto import encrypt
from bulkhead.domain import Role
from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from tests.integration.test_key_inventory import inventory, of, platform_key
from tests.support.gateway import GatewayThread, Response

ACTION = "admin:kms.platform.retire"


def retire(gateway: GatewayThread, version: int | str, key: str | None = None) -> Response:
    path = f"/admin/v1/keys/platform-kek/versions/{version}/retire"
    return gateway.admin("POST", path, key=key)


def primary(gateway: GatewayThread) -> int:
    return int(of(inventory(gateway), "platform-kek", "primary")[0]["version"])


def rotated(gateway: GatewayThread) -> int:
    """Rotate the platform KEK through the API; the version it replaced."""
    old = primary(gateway)
    assert gateway.admin("POST", "/admin/v1/keys/platform-kek/rotate").status == 200
    assert primary(gateway) == old + 1
    return old


def error_of(response: Response) -> dict[str, Any]:
    return dict((response.body or {}).get("error") or {})


def test_retire_after_rotation_needs_an_approved_grant(gateway: GatewayThread) -> None:
    old = rotated(gateway)
    refused = retire(gateway, old)
    assert refused.status == 403 and error_of(refused)["code"] == "privileged_access_required"
    gateway.grant(ACTION)
    done = retire(gateway, old)
    assert done.status == 200, done.body
    assert done.body["kind"] == "platform-kek" and done.body["retired"] == old
    [version] = [v for v in done.body["versions"] if v["version"] == old]
    assert version["retired_at"] is not None
    # The grant was for one retirement.
    again = rotated(gateway)
    assert retire(gateway, again).status == 403
    # The inventory shows it retired, and the key-age gauge ignores it.
    [shown] = [k for k in of(inventory(gateway), "platform-kek") if k["version"] == old]
    assert shown["state"] == "retired" and shown["next_rotation_at"] is None, shown
    assert shown["protects"].startswith("nothing"), shown
    # The retirement is on the record, as a key operation of the platform.
    events = [e for e in gateway.audit_events() if e.get("action") == "system:kms.retire"]
    assert any(e["tenant_id"] == PLATFORM_KEY_OWNER and f"{old}" in e["reason"] for e in events)


def test_the_primary_version_is_refused(gateway: GatewayThread) -> None:
    gateway.grant(ACTION)
    current = primary(gateway)
    refused = retire(gateway, current)
    assert refused.status == 409, refused.body
    assert "primary" in error_of(refused)["message"]
    assert primary(gateway) == current


def test_a_version_still_in_use_is_refused(gateway: GatewayThread) -> None:
    # A platform secret sealed under the primary version, which a bare KMS rotation (no
    # re-wrap, as when a replica sealed it during another's rotation) leaves behind.
    keyring = gateway.app.maintenance.keyring
    keyring.ensure(PLATFORM_KEY_OWNER)
    sealed = encrypt(
        b"left behind", tenant_id=PLATFORM_KEY_OWNER, kind="probe", object_id="left",
        kms=keyring.kms,
    )  # fmt: skip
    keyring.blobs.put(PLATFORM_KEY_OWNER, "probe", "left", sealed)
    try:
        old = primary(gateway)
        keyring.kms.rotate(PLATFORM_KEY_OWNER)
        gateway.grant(ACTION)
        refused = retire(gateway, old)
        assert refused.status == 409, refused.body
        assert re.search(r"still wraps \d+ object", error_of(refused)["message"]), refused.body
        [shown] = [k for k in of(inventory(gateway), "platform-kek") if k["version"] == old]
        assert shown["state"] == "unwrap-only" and "1 probe" in shown["protects"], shown
    finally:
        keyring.blobs.delete(PLATFORM_KEY_OWNER, "probe", "left")


def test_bad_or_unknown_versions_are_clear_4xx(gateway: GatewayThread) -> None:
    gateway.grant(ACTION)
    bad = retire(gateway, "one")
    assert bad.status == 400 and error_of(bad).get("param") == "version", bad.body
    # A refused call uses up no grant (the router releases it): the same one serves next.
    assert retire(gateway, 10_000).status == 404


def test_auditors_and_tenants_cannot_retire(gateway: GatewayThread, unique: str) -> None:
    old = rotated(gateway)
    auditor = platform_key(gateway, f"{unique}-auditor", Role.PLATFORM_AUDITOR)
    gateway.tenant(unique)
    for key in (auditor, gateway.key(unique, role="tenant_admin")):
        refused = retire(gateway, old, key=key)
        assert refused.status == 403, refused.body
    gateway.grant(ACTION)  # an admin's grant is the admin's own
    assert retire(gateway, old, key=auditor).status == 403
    [shown] = [k for k in of(inventory(gateway), "platform-kek") if k["version"] == old]
    assert shown["state"] == "unwrap-only", shown

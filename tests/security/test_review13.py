"""Review of issue 13 (platform principals), as an attacker: each finding, attacked.

Every test here failed on the merged code before its fix (see the review's report).
"""

from __future__ import annotations

from datetime import datetime

from tests.security.test_platform_principals import create, lone  # noqa: F401
from tests.support.gateway import GatewayThread

P = "/admin/v1/principals"


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

"""Signing in past `BULKHEAD_MAX_SESSIONS_PER_PRINCIPAL` ends the principal's oldest session.

Through the gateway: the oldest token answers 401 at once, the newer ones still work,
the sign-in that revoked it says so in its audit record, and another tenant's principal
keeps every session it had.
"""

from __future__ import annotations

from tests.integration.test_sign_in import login, person
from tests.support.gateway import GatewayThread

GATEWAY_ENV = {"BULKHEAD_MAX_SESSIONS_PER_PRINCIPAL": "2"}


def test_the_oldest_session_ends_when_a_principal_signs_in_past_the_bound(
    gateway: GatewayThread, unique: str
) -> None:
    for tenant in (unique, f"{unique}-b"):
        gateway.tenant(tenant)
        person(gateway, tenant, "alice", ["end_user"])
    theirs = [login(gateway, f"{unique}-b", "alice").body["token"] for _ in range(2)]
    mine = [login(gateway, unique, "alice").body["token"] for _ in range(3)]
    ended = gateway.call("GET", "/v1/models", mine[0])
    assert ended.status == 401 and ended.body["error"]["code"] == "session_expired"
    for token in [*mine[1:], *theirs]:
        assert gateway.call("GET", "/v1/models", token).status == 200
    oldest = mine[0].split("_", 2)[1]
    logins = [e for e in gateway.audit_events() if e.get("action") == "auth:login"]
    noted = [e for e in logins if f"revoked_oldest_session:{oldest}" in (e.get("reason") or "")]
    assert len(noted) == 1 and noted[0]["outcome"] == "success"

"""The rules both management surfaces share (`bulkhead.admin.rules`): one copy, held here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bulkhead.admin import rules
from bulkhead.domain import TENANT_ROLES, ApiKey, Role
from bulkhead.errors import InvalidRequest, ModelNotFound, PermissionDenied

SOON = datetime.now(UTC) + timedelta(hours=1)
LATER = SOON + timedelta(days=1)


def key(**fields: Any) -> ApiKey:
    return ApiKey(
        id="key_1", tenant_id="ten_1", principal_id="prn_1", role=Role.TENANT_ADMIN,
        secret_hash=b"x", **fields,
    )  # fmt: skip


def test_a_new_key_never_outlives_its_issuer() -> None:
    assert rules.bounded_expiry(None, LATER) == LATER
    assert rules.bounded_expiry(key(expires_at=SOON), None) == SOON
    assert rules.bounded_expiry(key(expires_at=LATER), SOON) == SOON
    with pytest.raises(InvalidRequest) as caught:
        rules.bounded_expiry(key(expires_at=SOON), LATER)
    assert caught.value.param == "expires_in_s"


def test_a_new_key_stays_within_its_issuers_models() -> None:
    assert rules.scoped_models(None, ["a"]) == ["a"]
    assert rules.scoped_models(key(models=frozenset({"b", "a"})), None) == ["a", "b"]
    with pytest.raises(ModelNotFound):
        rules.scoped_models(key(models=frozenset({"a"})), ["b"])


def test_a_key_rotates_nothing_broader_than_itself() -> None:
    rules.no_broader(None, key())
    rules.no_broader(key(models=frozenset({"a", "b"})), key(models=frozenset({"a"})))
    for broader in (key(), key(expires_at=LATER), key(models=frozenset({"c"}))):
        with pytest.raises(PermissionDenied):
            rules.no_broader(key(models=frozenset({"a"}), expires_at=SOON), broader)


def test_a_bounded_key_manages_no_principals() -> None:
    rules.unrestricted(None)
    rules.unrestricted(key())
    for bounded in (key(models=frozenset({"a"})), key(expires_at=SOON), key(limits={"rpm": 1})):
        with pytest.raises(PermissionDenied):
            rules.unrestricted(bounded)


def test_roles_a_tenant_gets() -> None:
    rules.tenant_roles_only(TENANT_ROLES)
    with pytest.raises(InvalidRequest):
        rules.tenant_roles_only([Role.PLATFORM_ADMIN])

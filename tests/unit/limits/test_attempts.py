"""Anonymous attempt limits: per client (IPv4 address or IPv6 /64) and in all."""

from __future__ import annotations

import pytest

from bulkhead.errors import RateLimited
from bulkhead.limits import InMemoryLimiter
from bulkhead.limits.attempts import AttemptLimits, client_key


def test_client_keys_group_ipv6_by_64_and_name_no_colons() -> None:
    assert client_key("192.0.2.1") == "4-192.0.2.1"
    assert client_key("::ffff:192.0.2.1") == "4-192.0.2.1"
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key(None) == client_key("not an address") == "unknown"
    assert all(":" not in client_key(a) for a in ("2001:db8::1", "::1", "10.0.0.1"))


def test_each_client_has_its_own_limit_and_all_share_one() -> None:
    limits = AttemptLimits(InMemoryLimiter(), per_client_rpm=2, rpm=5)
    for _ in range(2):
        limits.admit("192.0.2.1")
    with pytest.raises(RateLimited) as own:
        limits.admit("192.0.2.1")
    assert own.value.code == "sign_in_rate_limited" and own.value.detail == "client"
    assert own.value.retry_after_s > 0
    for n in range(2, 5):
        limits.admit(f"192.0.2.{n}")
    with pytest.raises(RateLimited) as everyone:
        limits.admit("192.0.2.99")
    assert everyone.value.detail == "all"

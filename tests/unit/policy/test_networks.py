"""`allowed_networks` outside Cedar, read as the generated policy reads it."""

from __future__ import annotations

from bulkhead.policy.networks import address_allowed


def test_addresses_inside_any_network_are_allowed() -> None:
    nets = ["10.0.0.0/8", "2001:db8::/32"]
    assert address_allowed("10.1.2.3", nets)
    assert address_allowed("2001:db8::1", nets)
    assert not address_allowed("192.0.2.1", nets)


def test_unreadable_networks_and_addresses_allow_nobody() -> None:
    assert not address_allowed("10.1.2.3", ["not a network"])
    assert address_allowed("10.1.2.3", ["not a network", "10.0.0.0/8"])
    assert not address_allowed(None, ["0.0.0.0/0"])
    assert not address_allowed("", ["0.0.0.0/0"])

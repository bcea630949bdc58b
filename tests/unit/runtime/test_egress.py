"""The egress classifier, URL parser, allowlist entries and policies, case by named case."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from bulkhead.errors import InvalidRequest
from bulkhead.runtime.egress import (
    AddressClass,
    EgressPolicy,
    EgressRefused,
    classify,
    parse_entries,
    parse_entry,
    parse_upstream_url,
)

A = AddressClass

# Addresses -------------------------------------------------------------------------------------

CLASSES = {
    "8.8.8.8": A.PUBLIC,
    "2606:4700::1111": A.PUBLIC,
    "127.0.0.1": A.LOOPBACK,
    "127.255.255.254": A.LOOPBACK,
    "::1": A.LOOPBACK,
    "10.1.2.3": A.PRIVATE,
    "172.31.255.255": A.PRIVATE,
    "192.168.0.1": A.PRIVATE,
    "fd12:3456::1": A.PRIVATE,
    "fec0::1": A.PRIVATE,
    "169.254.1.1": A.LINK_LOCAL,
    "fe80::1": A.LINK_LOCAL,
    "fe80::1%eth0": A.LINK_LOCAL,
    "169.254.169.254": A.METADATA,
    "169.254.170.2": A.METADATA,
    "fd00:ec2::254": A.METADATA,
    "100.100.100.200": A.METADATA,
    "100.64.0.1": A.CGNAT,
    "100.127.255.254": A.CGNAT,
    "0.0.0.0": A.UNSPECIFIED,
    "0.1.2.3": A.UNSPECIFIED,
    "::": A.UNSPECIFIED,
    "224.0.0.1": A.MULTICAST,
    "ff02::1": A.MULTICAST,
    "240.0.0.1": A.RESERVED,
    "255.255.255.255": A.RESERVED,
    "192.0.2.10": A.RESERVED,
    "198.18.0.1": A.RESERVED,
    "2001:db8::1": A.RESERVED,
    # Addresses that carry another one are judged by what they reach.
    "::ffff:127.0.0.1": A.LOOPBACK,
    "::ffff:169.254.169.254": A.METADATA,
    "::ffff:10.0.0.1": A.PRIVATE,
    "::ffff:8.8.8.8": A.PUBLIC,
    "64:ff9b::a9fe:a9fe": A.METADATA,
    "64:ff9b::7f00:1": A.LOOPBACK,
    "64:ff9b::808:808": A.PUBLIC,
    "64:ff9b:1::1": A.RESERVED,
    "::7f00:1": A.RESERVED,
    # IPv4-translated (RFC 2765, SIIT): a stateless translator delivers it to the IPv4 one.
    "::ffff:0:7f00:1": A.RESERVED,
    "::ffff:0:a9fe:a9fe": A.RESERVED,
    "::ffff:0:808:808": A.RESERVED,
    "2002:7f00:1::": A.RESERVED,
    "2001::1": A.RESERVED,
}


@pytest.mark.parametrize(("address", "expected"), CLASSES.items(), ids=list(CLASSES))
def test_classify(address: str, expected: AddressClass) -> None:
    assert classify(ipaddress.ip_address(address)) is expected


# URLs ------------------------------------------------------------------------------------------

CANONICAL = {
    "http://example.com/v1": ("http://example.com/v1", "example.com"),
    "HTTPS://API.Example.COM./v1/": ("https://api.example.com/v1", "api.example.com"),
    "http://127.0.0.1.:8000/v1": ("http://127.0.0.1:8000/v1", "127.0.0.1"),
    "http://[::ffff:127.0.0.1]/v1": ("http://[::ffff:7f00:1]/v1", "::ffff:7f00:1"),
    "http://[2606:4700::1111]:443": ("http://[2606:4700::1111]:443", "2606:4700::1111"),
    "http://1.2.3.4.nip.example/v1": ("http://1.2.3.4.nip.example/v1", "1.2.3.4.nip.example"),
    "http://example.com:080/v1": ("http://example.com:80/v1", "example.com"),
}


@pytest.mark.parametrize(("raw", "expected"), CANONICAL.items(), ids=list(CANONICAL))
def test_urls_come_back_canonical(raw: str, expected: tuple[str, str]) -> None:
    url = parse_upstream_url(raw)
    assert (url.url, url.host) == expected
    assert URL(url.url).raw_host == urlsplit(url.url).hostname == url.host


REFUSED = {
    "decimal": "http://2130706433/v1",
    "hex": "http://0x7f000001/v1",
    "hex-dotted": "http://0x7f.0.0.1/v1",
    "octal": "http://0177.0.0.1/v1",
    "short": "http://127.1/v1",
    "zero": "http://0/v1",
    "leading-zero": "http://127.000.000.001/v1",
    "userinfo": "http://example.com@127.0.0.1/v1",
    "userinfo-empty": "http://@example.com/v1",
    "query": "http://example.com/v1?next=http://127.0.0.1/",
    "fragment": "http://example.com/v1#x",
    "backslash": "http://example.com\\@127.0.0.1/v1",
    "space": "http://exa mple.com/v1",
    "newline": "http://example.com/v1\r\nX-Injected: 1",
    "unicode": "http://exämple.com/v1",
    "percent-host": "http://%31%32%37.0.0.1/v1",
    "zone": "http://[fe80::1%25eth0]/v1",
    "v6-unbracketed": "http://::1/v1",
    "v4-in-brackets": "http://[127.0.0.1]/v1",
    "port-zero": "http://example.com:0/v1",
    "port-big": "http://example.com:65536/v1",
    "port-sign": "http://example.com:+80/v1",
    "underscore": "http://exa_mple.com/v1",
    "two-dots": "http://example.com../v1",
    "scheme": "file:///etc/passwd",
    "gopher": "gopher://example.com/",
    "no-host": "http:///v1",
    "long": "http://example.com/" + "a" * 2048,
}


@pytest.mark.parametrize("raw", REFUSED.values(), ids=list(REFUSED))
def test_every_other_form_is_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_upstream_url(raw)
    assert caught.value.param == "upstream"


# Allowlist entries -----------------------------------------------------------------------------


def test_entries_are_canonical_and_deduplicated() -> None:
    assert parse_entries(
        ["API.example.com", "*.Example.org", "10.0.0.0/8", "::1", "127.0.0.1"]
    ) == (
        "api.example.com",
        "*.example.org",
        "10.0.0.0/8",
        "::1/128",
        "127.0.0.1/32",
    )
    assert parse_entries(["a.example", "A.example."]) == ("a.example",)


@pytest.mark.parametrize(
    "raw",
    ["0.0.0.0/0", "::/0", "10.0.0.1/8", "::ffff:0:0/96", "1.2.3", "*", "*.*.example", "a b", ""],
)
def test_bad_entries_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_entry(raw)


def test_at_most_a_hundred_entries() -> None:
    with pytest.raises(InvalidRequest):
        parse_entries([f"h{i}.example" for i in range(101)])


# Policies --------------------------------------------------------------------------------------

TENANT = EgressPolicy.tenant(
    parse_entries(["api.example.com", "*.models.example", "10.20.0.0/16", "2001:db8:1::/48"])
)


def admits(policy: EgressPolicy, raw: str) -> bool:
    try:
        policy.check_url(parse_upstream_url(raw))
    except EgressRefused:
        return False
    return True


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://api.example.com/v1", True),
        ("https://a.models.example/v1", True),
        ("https://models.example/v1", False),  # a '*.' entry names the sub-domains only
        ("https://api.example.com.evil.example/v1", False),
        ("https://evilapi.example.com/v1", False),
        ("http://10.20.3.4:8000/v1", True),
        ("http://10.21.0.1/v1", False),
        ("http://[::ffff:10.20.3.4]/v1", True),
        ("http://127.0.0.1/v1", False),
        ("http://169.254.169.254/", False),
        ("http://8.8.8.8/v1", False),  # a public literal needs a CIDR too
        ("http://[2001:db8:1::5]/v1", True),
    ],
)
def test_a_tenant_policy_admits_its_entries_only(raw: str, expected: bool) -> None:
    assert admits(TENANT, raw) is expected


def test_a_host_entry_never_admits_a_special_address() -> None:
    TENANT.check_resolved("api.example.com", ["93.184.216.34", "2606:2800:220:1::1"])
    for inside in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1"):
        with pytest.raises(EgressRefused):
            TENANT.check_resolved("api.example.com", ["93.184.216.34", inside])
    # A CIDR entry admits what it contains, whatever the name.
    TENANT.check_resolved("api.example.com", ["10.20.0.9"])
    with pytest.raises(EgressRefused):
        TENANT.check_resolved("other.example.com", ["93.184.216.34"])


def test_an_empty_policy_admits_nothing() -> None:
    empty = EgressPolicy.tenant(())
    assert empty.empty
    for raw in ("https://api.example.com/v1", "http://8.8.8.8/", "http://127.0.0.1/"):
        assert not admits(empty, raw)


def test_a_policy_keys_by_what_it_admits() -> None:
    """Its hash is worked out once (it keys the pools on every call): equal policies are one
    key, and a policy that admits anything else is another."""
    entries = ["api.example.com", "*.example.org", "10.1.0.0/16"]
    one, same = EgressPolicy.tenant(entries), EgressPolicy.tenant(list(reversed(entries)))
    assert one == same and hash(one) == hash(same) and {one: 1}[same] == 1
    assert "_hash" not in repr(one)
    others = [
        EgressPolicy.tenant(entries[:2]),
        EgressPolicy.tenant([*entries, "10.2.0.0/16"]),
        EgressPolicy.platform(["10.1.0.0/16"]),
        EgressPolicy.platform(),
    ]
    assert len({one, *others}) == 5


def test_the_platform_policy_admits_its_own_networks_but_not_metadata() -> None:
    platform = EgressPolicy.platform()
    for raw in ("http://127.0.0.1:8000/v1", "http://10.0.0.5/v1", "https://any.example/v1"):
        assert admits(platform, raw), raw
    for raw in (
        "http://169.254.169.254/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://169.254.1.1/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
    ):
        assert not admits(platform, raw), raw
    assert admits(EgressPolicy.platform(["169.254.1.0/24"]), "http://169.254.1.1/")


def test_policies_are_hashable_values() -> None:
    again = EgressPolicy.tenant(parse_entries(["api.example.com", "10.20.0.0/16"]))
    same = EgressPolicy.tenant(parse_entries(["10.20.0.0/16", "api.example.com"]))
    assert again.names == same.names and set(again.networks) == set(same.networks)
    assert hash(EgressPolicy.platform()) == hash(EgressPolicy.platform())


# What the parser accepts is what the client connects to -----------------------------------------

URLISH = st.text(
    alphabet=st.sampled_from(list("htps:/[]@.%#?\\0123456789abcdefx-_~: ")), max_size=40
).map(lambda tail: "http://" + tail)


@settings(max_examples=400, deadline=None)
@given(st.one_of(URLISH, st.text(max_size=60)))
def test_parsing_refuses_cleanly_and_agrees_with_the_client(raw: str) -> None:
    try:
        url = parse_upstream_url(raw)
    except InvalidRequest:
        return
    assert parse_upstream_url(url.url) == url  # canonical: a fixed point
    # The upstream client checks `urlsplit(...).hostname`; aiohttp connects to yarl's host.
    assert urlsplit(url.url).hostname == url.host
    assert URL(url.url).raw_host == url.host

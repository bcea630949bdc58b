"""Where the gateway may connect: upstream URLs, address classes and egress policies.

An upstream URL is tenant-settable (a model version's), so it is hostile
input: it may name the gateway's own loopback ports, the cloud metadata
service, a private network, or hide one of them behind a numeric form that
`getaddrinfo` still accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``),
an IPv4-mapped IPv6 address, a trailing dot or a ``user@host`` prefix.

`parse_upstream_url` accepts one plain form only and returns it canonical.
An `EgressPolicy` then decides per host name and per address.  A tenant's
policy comes from the platform's allowlist for it (host names, ``*.`` suffixes
and CIDRs) and admits nothing else: a host entry admits a name that resolves
to public addresses only; an address of any special class (loopback,
private, link-local, metadata, CGNAT, unspecified, multicast, reserved) is
admitted only by a CIDR entry that contains it.  The platform's own policy
admits any name, public, loopback, private and CGNAT addresses, and the
other classes only through CIDRs an operator sets.  The same checks run when
a version is published and again on every new connection, after DNS
resolution (`bulkhead.runtime.connect`), so a name that resolves elsewhere
at connect time (DNS rebinding) is refused.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bulkhead.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL = 2048
MAX_ENTRIES = 100


class AddressClass(enum.StrEnum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    METADATA = "metadata"
    CGNAT = "cgnat"
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    RESERVED = "reserved"


# Cloud instance metadata endpoints: AWS (IMDS, ECS task metadata, its DNS and NTP,
# IMDS over IPv6), GCP and Azure (169.254.169.254 too), Alibaba Cloud.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "169.254.169.123",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "100.100.100.200",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the low 32 bits are an IPv4 address
_CLASSES: tuple[tuple[AddressClass, tuple[IPNetwork, ...]], ...] = tuple(
    (cls, tuple(ipaddress.ip_network(n) for n in nets))
    for cls, nets in (
        (AddressClass.UNSPECIFIED, ("0.0.0.0/8", "::/128")),
        (AddressClass.LOOPBACK, ("127.0.0.0/8", "::1/128")),
        (AddressClass.LINK_LOCAL, ("169.254.0.0/16", "fe80::/10")),
        (AddressClass.MULTICAST, ("224.0.0.0/4", "ff00::/8")),
        (AddressClass.CGNAT, ("100.64.0.0/10",)),
        (
            AddressClass.PRIVATE,
            ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10"),
        ),
        # Addresses that only carry or embed another one: IPv4-compatible IPv6
        # (deprecated), IPv4-translated (RFC 2765: SIIT delivers it to the IPv4
        # address, 127.0.0.1 or 169.254.169.254 included), 6to4 and Teredo, and
        # local-use NAT64 (RFC 8215).
        (
            AddressClass.RESERVED,
            ("::/96", "::ffff:0:0:0/96", "2002::/16", "2001::/32", "64:ff9b:1::/48"),
        ),
    )
)


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped or NAT64 IPv6 address reaches, else the address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.scope_id:
            return ipaddress.IPv6Address(str(address).partition("%")[0])
    return address


def classify(address: IPAddress) -> AddressClass:
    """The class of the address that a connection to `address` would reach."""
    ip = unwrap(address)
    if ip in METADATA:
        return AddressClass.METADATA
    for cls, networks in _CLASSES:
        if any(ip in network for network in networks):
            return cls
    return AddressClass.PUBLIC if ip.is_global else AddressClass.RESERVED


def literal(host: str) -> IPAddress | None:
    """The address `host` is, when it is an IP literal (brackets and zone allowed); else None."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class EgressRefused(OSError):
    """A connection the egress policy does not allow.

    An `OSError`, so that raised inside aiohttp's connection path it becomes
    a connection error like any other: the upstream client maps it to one
    opaque answer.  `reason` is for the publisher and the logs.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# URLs and hosts ---------------------------------------------------------------------------------

# Visible ASCII without the backslash (which some parsers read as '/').
_URL_CHAR = re.compile(r"[!-\[\]-~]*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A last label that some resolver would read as (part of) an IPv4 address.
_NUMERIC = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_PATH = re.compile(r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)*")


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="upstream")


@dataclass(frozen=True, slots=True)
class UpstreamUrl:
    """An upstream base URL in its one canonical form, with its host (an address if a literal)."""

    url: str
    host: str
    address: IPAddress | None


def parse_host(raw: str) -> tuple[str, IPAddress | None]:
    """A host name (lowercase, no trailing dot) or an IP literal; any other form is refused."""
    if raw.startswith("["):
        address = literal(raw) if raw.endswith("]") and "%" not in raw else None
        if not isinstance(address, ipaddress.IPv6Address):
            raise _bad("Give an IPv6 address in brackets, without a zone.")
        return str(address), address
    host = raw.lower()
    host = host[:-1] if host.endswith(".") else host
    labels = host.split(".")
    if _NUMERIC.fullmatch(labels[-1]):
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            raise _bad("Give an IPv4 address in dotted-decimal form (like 192.0.2.10).") from None
        return str(address), address
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _bad("The upstream's host is not a valid host name.")
    return host, None


def _split_netloc(netloc: str) -> tuple[str, str]:
    if "@" in netloc:
        raise _bad("The upstream URL may not carry a user name or password.")
    if netloc.startswith("["):
        host, _, rest = netloc.partition("]")
        host += "]"
        if rest and not rest.startswith(":"):
            raise _bad("The upstream URL's host is malformed.")
        return host, rest[1:]
    host, _, port = netloc.partition(":")
    return host, port


def _port(raw: str) -> str:
    if raw == "":
        return ""
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise _bad("The upstream URL's port must be a number from 1 to 65535.")
    return str(int(raw))


def parse_upstream_url(raw: str) -> UpstreamUrl:
    """The canonical ``scheme://host[:port]/path`` of an upstream base URL, or `InvalidRequest`."""
    if len(raw) > MAX_URL or not _URL_CHAR.fullmatch(raw):
        raise _bad("The upstream URL must be printable ASCII of at most 2048 characters.")
    if "?" in raw or "#" in raw:
        raise _bad("The upstream URL may not carry a query or a fragment.")
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. brackets around something that is no IPv6 address
        raise _bad("The upstream URL's host is malformed.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise _bad("'upstream' must be an http(s) URL.")
    host_part, port_part = _split_netloc(parts.netloc)
    host, address = parse_host(host_part)
    port = _port(port_part)
    if not _PATH.fullmatch(parts.path):
        raise _bad("The upstream URL's path has characters that must be percent-encoded.")
    shown = f"[{host}]" if isinstance(address, ipaddress.IPv6Address) else host
    authority = f"{shown}:{port}" if port else shown
    return UpstreamUrl(f"{scheme}://{authority}{parts.path.rstrip('/')}", host, address)


# Allowlist entries ------------------------------------------------------------------------------


def parse_entry(raw: str) -> str:
    """An allowlist entry in canonical form: a CIDR, a host name or ``*.`` + a domain."""
    text = raw.strip().lower()
    if "/" in text or literal(text) is not None:
        return str(_network(text))
    name = text[2:] if text.startswith("*.") else text
    try:
        host, address = parse_host(name)
    except InvalidRequest:
        address, host = None, ""
    if address is not None or not host:
        raise InvalidRequest(
            f"'{raw[:100]}' is neither a host name, '*.' and a domain, nor a CIDR.",
            param="entries",
        )
    return ("*." if text.startswith("*.") else "") + host


def _network(text: str) -> IPNetwork:
    try:
        network = ipaddress.ip_network(text.strip("[]"), strict=True)
    except ValueError:
        raise InvalidRequest(
            f"'{text[:100]}' is not a CIDR (its host bits must be zero).", param="entries"
        ) from None
    if network.prefixlen == 0:
        raise InvalidRequest("A CIDR of every address is not an allowlist.", param="entries")
    if isinstance(network, ipaddress.IPv6Network) and unwrap(network.network_address) != (
        network.network_address
    ):
        raise InvalidRequest("Give IPv4 ranges as IPv4 CIDRs.", param="entries")
    return network


def parse_entries(raw: Iterable[str]) -> tuple[str, ...]:
    """Canonical, de-duplicated entries in their given order; at most `MAX_ENTRIES`."""
    entries = tuple(dict.fromkeys(parse_entry(e) for e in raw))
    if len(entries) > MAX_ENTRIES:
        raise InvalidRequest(f"At most {MAX_ENTRIES} entries.", param="entries")
    return entries


# Policies ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Which names and addresses a connection may go to (hashable: it keys connection pools)."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    # The platform's policy admits every name, and these classes without a CIDR.
    any_name: bool = False
    trusted: frozenset[AddressClass] = frozenset()
    # Hashed on every upstream call (the pool's key, the admitted hosts): the hash of its
    # networks runs Python code per network, so it is worked out once (the policy is frozen).
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (self.names, self.suffixes, self.networks, self.any_name, self.trusted)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def tenant(cls, entries: Iterable[str]) -> EgressPolicy:
        """A tenant's policy from its allowlist's canonical entries (empty: nothing at all)."""
        names, suffixes, networks = set(), [], []
        for entry in entries:
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry))
            elif entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    @classmethod
    def platform(cls, cidrs: Iterable[str] = ()) -> EgressPolicy:
        """The platform's own deployments: any name; loopback, private and CGNAT are fine."""
        trusted = frozenset({AddressClass.LOOPBACK, AddressClass.PRIVATE, AddressClass.CGNAT})
        networks = tuple(_network(c) for c in cidrs)
        return cls(networks=networks, any_name=True, trusted=trusted)

    @property
    def empty(self) -> bool:
        return not (self.names or self.suffixes or self.networks or self.any_name)

    def check_name(self, host: str) -> None:
        """Refuse a host name the policy does not name (IP literals go to `check_address`)."""
        name = host.lower().rstrip(".")
        if self.any_name or name in self.names or name.endswith(self.suffixes):
            return
        raise EgressRefused(f"the host '{name[:253]}' is not in the upstream allowlist")

    def check_address(self, address: IPAddress, *, named: bool) -> None:
        """Refuse an address the policy does not admit.

        `named` says the address was reached through a host name the policy
        admits, which lets a public address through; special classes need a
        CIDR of the policy (or, for the platform, a trusted class) either way.
        """
        ip = unwrap(address)
        if any(ip in network for network in self.networks):
            return
        cls = classify(ip)
        if cls is AddressClass.PUBLIC and (named or self.any_name):
            return
        if cls in self.trusted:
            return
        if cls is AddressClass.PUBLIC:
            raise EgressRefused(f"the address {ip} is not in a CIDR of the upstream allowlist")
        raise EgressRefused(f"the address {ip} is {cls.value}, which the allowlist does not admit")

    def check_resolved(self, host: str, addresses: Iterable[str]) -> None:
        """At connect time: the name, and every address it resolved to."""
        self.check_name(host)
        for text in addresses:
            address = literal(text)
            if address is None:
                raise EgressRefused("the resolver returned something that is not an address")
            self.check_address(address, named=True)

    def check_host(self, host: str) -> None:
        """A URL's host as the connection will see it: a literal, or a name to resolve later."""
        address = literal(host)
        if address is None:
            self.check_name(host)
        else:
            self.check_address(address, named=False)

    def check_url(self, url: UpstreamUrl) -> None:
        """At publish time: what can be known before any DNS lookup."""
        if url.address is None:
            self.check_name(url.host)
        else:
            self.check_address(url.address, named=False)

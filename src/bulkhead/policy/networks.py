"""A tenant's `allowed_networks`, checked outside Cedar (where there is no tenant context yet).

The policy layer turns `allowed_networks` into a forbid for every call of
the tenant (`_compile.network_policy`); signing in happens before there is a
call to authorize, so it asks this function the same question, with the
same reading: an entry that does not parse allows nobody, and neither does
a missing or unreadable client address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def address_allowed(address: str | None, networks: Iterable[object]) -> bool:
    """Whether `address` is inside one of `networks` (CIDRs; unreadable ones are skipped)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    for raw in networks:
        try:
            if ip in ipaddress.ip_network(str(raw), strict=False):
                return True
        except ValueError:
            continue
    return False

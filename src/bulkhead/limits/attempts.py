"""Rate limits on what anonymous clients may attempt (sign-in), per client and in all.

Anonymous requests have no tenant or key to count against, only the address
they come from.  `AttemptLimits` counts each attempt in two scopes of one
limiter bucket: the client's own (``client-<id>``) and everyone's (``all``);
an attempt is admitted in both or refused in both.  The limiter is the one
admission uses, so with Redis configured every replica shares the counts.
Refusals are `RateLimited` with a Retry-After; a limiter that cannot be
reached refuses too (`LimiterUnavailable`: fail closed).

A client is its IPv4 address, or its IPv6 /64: one subscriber commonly holds
a whole /64, so counting single IPv6 addresses would let one client count as
2**64.  The address is the socket peer (`bulkhead serve` trusts no
forwarding headers), so behind a reverse proxy every client is the proxy:
there, limit per client at the proxy and raise the per-client limit here.
"""

from __future__ import annotations

import ipaddress

from bulkhead.errors import RateLimited
from bulkhead.limits.limiter import Limiter, LimitExceeded, Limits


def client_key(address: str | None) -> str:
    """The name under which an address is counted (no ':' so that it can name a scope)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is None:
            return f"6-{int(ip) >> 64:016x}"
        ip = ip.ipv4_mapped
    return f"4-{ip}"


class AttemptLimits:
    def __init__(
        self, limiter: Limiter, *, per_client_rpm: int, rpm: int, bucket: str = "signin"
    ) -> None:
        self._limiter, self._bucket = limiter, bucket
        self._client, self._all = Limits(rpm=per_client_rpm), Limits(rpm=rpm)

    def admit(self, address: str | None) -> None:
        """Count one attempt from `address`, or raise `RateLimited` without counting it."""
        scopes = {"all": self._all, f"client-{client_key(address)}": self._client}
        try:
            reservation = self._limiter.reserve(self._bucket, scopes, tokens=0)
        except LimitExceeded as exc:
            raise _limited(exc) from None
        # An attempt stays in the window as one request; it holds no slot while it runs.
        self._limiter.settle(reservation, 0)

    def __repr__(self) -> str:
        return (
            f"AttemptLimits({self._bucket!r}, client rpm={self._client.rpm}, rpm={self._all.rpm})"
        )


def _limited(exc: LimitExceeded) -> RateLimited:
    limited = RateLimited(
        "Too many sign-in attempts; try again later.", retry_after_s=exc.retry_after_s
    )
    limited.code = "sign_in_rate_limited"
    # Which limit it was stays in the audit log: the client learns only when to retry.
    limited.detail = "all" if exc.scope == "all" else "client"
    return limited

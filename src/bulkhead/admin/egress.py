"""Upstream URLs as the management APIs take them: canonical, and within an egress policy.

Publishing knows only the URL (no DNS lookup happens here); the same policy
is checked again on every connection (`bulkhead.runtime.connect`).
"""

from __future__ import annotations

from bulkhead.errors import PermissionDenied
from bulkhead.runtime.egress import EgressPolicy, EgressRefused, parse_upstream_url


def checked_url(raw: str, policy: EgressPolicy) -> str:
    """The canonical form of an upstream URL that `policy` admits, as far as publishing can tell."""
    url = parse_upstream_url(raw)
    try:
        policy.check_url(url)
    except EgressRefused as exc:
        raise PermissionDenied(
            f"The upstream is not allowed: {exc.reason}.",
            param="upstream",
            code="upstream_not_allowed",
        ) from None
    return url.url


def tenant_url(raw: str, entries: tuple[str, ...]) -> str:
    """A model version's upstream: deny by default, then the tenant's allowlist."""
    if not entries:
        raise PermissionDenied(
            "Your tenant has no upstream allowlist: a platform admin must add your model "
            "servers to it before you publish versions.",
            param="upstream",
            code="upstream_not_allowed",
        )
    return checked_url(raw, EgressPolicy.tenant(entries))

"""The caller's clearance in the tenant context: the platform's, which a sign-in may only lower."""

from __future__ import annotations

import pytest

from bulkhead.gateway.tenant_context import _clearance


@pytest.mark.parametrize(
    ("principal", "signed_in", "expected"),
    [
        (None, None, None),
        ("confidential", None, "confidential"),
        (None, "restricted", "internal"),  # Unset, the default is the ceiling (issue 12, 7).
        (None, "public", "public"),
        ("confidential", "restricted", "confidential"),  # The IdP cannot raise it.
        ("restricted", "internal", "internal"),  # Nor can the platform above the IdP's.
        ("confidential", "made-up", "public"),  # Unknown: the lowest.
    ],
)
def test_the_lower_clearance_holds(
    principal: str | None, signed_in: str | None, expected: str | None
) -> None:
    assert _clearance(principal, signed_in) == expected

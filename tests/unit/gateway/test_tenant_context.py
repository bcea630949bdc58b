"""The caller's clearance in the tenant context: the lower of the principal's and the sign-in's."""

from __future__ import annotations

import pytest

from bulkhead.gateway.tenant_context import _clearance


@pytest.mark.parametrize(
    ("principal", "signed_in", "expected"),
    [
        (None, None, None),
        ("confidential", None, "confidential"),
        (None, "restricted", "restricted"),
        ("confidential", "restricted", "confidential"),  # The IdP cannot raise it.
        ("restricted", "internal", "internal"),  # Nor can the platform above the IdP's.
        ("confidential", "made-up", "made-up"),  # Unknown: lowest (Cedar reads it as public).
    ],
)
def test_the_lower_clearance_holds(
    principal: str | None, signed_in: str | None, expected: str | None
) -> None:
    assert _clearance(principal, signed_in) == expected

"""The shortcuts of session 15 (issue 21) in the limits: the same values, less work.

`effective_one` is `effective(...)[name]` without merging every quota (fair
sharing asks it for the weight of every call to a shared model); the
in-process limiter numbers its reservations instead of drawing random ids.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.domain import Tier
from bulkhead.limits import InMemoryLimiter
from bulkhead.limits.limiter import Limits
from bulkhead.limits.policy import QUOTAS, TIER_DEFAULTS, effective, effective_one

NAMES = st.sampled_from([*QUOTAS, "share_weight", "unknown", "rpm"])
QUOTA_MAPS = st.dictionaries(NAMES, st.one_of(st.none(), st.integers(-5, 10**6)), max_size=6)


@given(st.sampled_from(list(Tier)), QUOTA_MAPS, NAMES)
@settings(max_examples=500, deadline=None)
def test_one_quota_is_the_merged_quotas_one(tier: Tier, quotas: dict[str, Any], name: str) -> None:
    merged = effective(tier, quotas)
    if name in merged:
        assert effective_one(tier, quotas, name) == merged[name]
    else:
        with pytest.raises(KeyError):
            effective_one(tier, quotas, name)
    assert set(TIER_DEFAULTS[tier]) <= set(merged)


def test_reservations_of_one_limiter_have_distinct_ids_and_settle_each_their_own() -> None:
    limiter = InMemoryLimiter()
    scopes = {"tenant": Limits(rpm=100, tpm=10_000)}
    first = limiter.reserve("ten_a", scopes, tokens=100)
    second = limiter.reserve("ten_a", scopes, tokens=50)
    assert first.id != second.id
    limiter.release(first)  # refunds the first only
    third = limiter.reserve("ten_a", scopes, tokens=0)
    assert third.usage["tenant"].requests == 2 and third.usage["tenant"].tokens == 50
    assert len({limiter.reserve("ten_b", scopes, tokens=1).id for _ in range(50)}) == 50

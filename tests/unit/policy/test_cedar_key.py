"""The Cedar decision cache keys a resource by its fields (session 15, issue 21).

A tuple of strings and numbers hashes and compares in C, where the frozen
dataclass's own `hash` and `==` are generated Python; the key is the same
exactly when the resources are equal, so no decision is shared that was not
before.  The default resource (a tenant and a kind) is keyed as the resource
it stands for.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.policy import Resource
from bulkhead.policy.cedar import _DEFAULT_PLACE, _fields

RESOURCES = st.builds(
    Resource,
    tenant_id=st.one_of(st.none(), st.sampled_from(["ten_a", "ten_b", ""])),
    kind=st.sampled_from(["v1", "model", "tenant", ""]),
    classification=st.integers(0, 3),
    sensitivity=st.integers(0, 2),
    region=st.sampled_from(["", "eu", "us"]),
)


@given(RESOURCES, RESOURCES)
@settings(max_examples=500, deadline=None)
def test_two_resources_share_a_key_exactly_when_they_are_equal(a: Resource, b: Resource) -> None:
    assert (_fields(a) == _fields(b)) is (a == b)
    assert Resource(*_fields(a)) == a


def test_every_field_is_in_the_key_and_the_default_is_the_resource_it_stands_for() -> None:
    names = [f.name for f in dataclasses.fields(Resource)]
    assert names[:2] == ["tenant_id", "kind"]
    assert len(_fields(Resource())) == len(names)
    assert (None, "v1", *_DEFAULT_PLACE) == _fields(Resource(kind="v1"))
    assert ("ten_a", "v1", *_DEFAULT_PLACE) == _fields(Resource(tenant_id="ten_a", kind="v1"))

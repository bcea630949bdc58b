"""The platform's guard settings are a floor: which tenant settings loosen it, and what holds."""

from __future__ import annotations

from typing import Any

import pytest

from bulkhead.guard import GuardConfig, looser_settings, settings_of, with_floor
from bulkhead.guard._entities import Action, Entity


def hosts(*names: str) -> dict[str, list[str]]:
    return {"allowed_link_hosts": list(names)}


LINKS = ["allowed_link_hosts"]


FT_LOGPROBS = "allow_fine_tuned_logprobs"


@pytest.mark.parametrize(
    ("floor", "own", "loose"),
    [
        (hosts("*.example.com"), hosts("a.example.com"), []),
        (hosts("*.example.com"), hosts("*.a.example.com"), []),
        (hosts("*.example.com"), hosts("*.example.com", "b.example.com"), []),
        (hosts("*.example.com"), hosts("example.com"), LINKS),  # not a subdomain
        (hosts("*.example.com"), hosts("badexample.com"), LINKS),
        (hosts("a.example.com"), hosts("*.example.com"), LINKS),
        (hosts(), hosts("x.test"), LINKS),
        ({"secrets": "redact"}, {"entities": {"jwt": "mask"}}, ["entities.jwt"]),
        ({"secrets": "redact"}, {"pii": "off"}, []),  # the platform set nothing for PII
        ({"entities": {"card": "block"}}, {"pii": "redact"}, []),  # card keeps the floor's block
        ({"pii": "pseudonymize"}, {"pii": "redact"}, []),
        ({"pii": "redact"}, {"pii": "pseudonymize"}, ["pii"]),
        ({}, {"pii": "off", "allow_logprobs": True, "canary": False}, []),  # no floor, no limit
        ({FT_LOGPROBS: False}, {FT_LOGPROBS: True}, [FT_LOGPROBS]),
        ({FT_LOGPROBS: True}, {FT_LOGPROBS: False}, []),
    ],
)  # fmt: skip
def test_looser_settings(floor: dict[str, Any], own: dict[str, Any], loose: list[str]) -> None:
    assert looser_settings(floor, own) == loose


def test_with_floor_drops_what_loosens_it_and_keeps_the_rest() -> None:
    floor = {"pii": "redact", "allow_logprobs": False}
    own = {"pii": "off", "entities": {"email": "block", "phone": "off"}, "canary": False}
    config = with_floor(floor, own)
    assert config.pii is Action.REDACT and config.canary is False
    assert config.action_for(Entity.EMAIL) is Action.BLOCK
    assert config.action_for(Entity.PHONE) is Action.REDACT  # its "off" gave way
    assert config.allow_logprobs is False


def test_unparseable_tenant_settings_fall_back_to_the_floor_not_below() -> None:
    assert settings_of({"pii": "block"}, {"pii": "shred"}).pii is Action.BLOCK
    assert settings_of({"pii": "shred"}, {}) == GuardConfig()

"""The guard book: one `Guard` per tenant settings, rebuilt only when they change."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import pytest

from bulkhead.domain import Tenant, TenantConfig, TenantStatus, Tier
from bulkhead.gateway.guards import GuardBook, hit_kinds, report
from bulkhead.guard import Action, Guard, GuardConfig
from bulkhead.web.scope import Exchange
from tests.unit.gateway.test_guard import caller


def tenant(guard: dict[str, Any], tenant_id: str = "t-1") -> Tenant:
    config = TenantConfig.from_json({"guard": guard})
    return Tenant(tenant_id, "acme", Tier.SHARED, TenantStatus.ACTIVE, config=config)


class Counting:
    def __init__(self) -> None:
        self.built: list[GuardConfig] = []

    def __call__(self, config: GuardConfig) -> Guard:
        self.built.append(config)
        return Guard(config)


def test_a_reload_with_the_same_settings_keeps_the_guard() -> None:
    build = Counting()
    book = GuardBook(build=build)
    first = book.for_tenant(tenant({"pii": "mask"}))
    assert book.for_tenant(tenant({"pii": "mask"})) is first  # A new but equal config object.
    changed = book.for_tenant(tenant({"pii": "redact"}))
    assert changed is not first and changed.config.pii is Action.REDACT
    assert len(build.built) == 2


def test_tenants_get_guards_of_their_own() -> None:
    book = GuardBook()
    a = book.for_tenant(tenant({"pii": "block"}, "t-a"))
    b = book.for_tenant(tenant({}, "t-b"))
    assert a is not b
    assert (a.config.pii, b.config.pii) == (Action.BLOCK, GuardConfig().pii)


def test_unparsable_stored_settings_fall_back_to_the_defaults(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = tenant({})
    bad = dataclasses.replace(bad, config=TenantConfig(guard={"pii": "shred", "x": 1}))
    with caplog.at_level(logging.ERROR):
        guard = GuardBook().for_tenant(bad)
    assert guard.config == GuardConfig()
    assert "stored guard settings are invalid" in caplog.text


def test_tenant_config_round_trips_guard_settings() -> None:
    stored = {"guard": {"pii": "mask", "entities": {"card": "block"}}}
    config = TenantConfig.from_json(stored)
    assert config.to_json()["guard"] == stored["guard"]
    assert TenantConfig.from_json(config.to_json()) == config
    assert TenantConfig().to_json()["guard"] == {}
    with pytest.raises(ValueError, match="guard must be an object"):
        TenantConfig.from_json({"guard": ["pii"]})
    with pytest.raises(TypeError):
        config.guard["pii"] = "off"  # type: ignore[index]


def test_hit_kinds_name_entities_and_collapse_injection_rules() -> None:
    reasons = ["pii:email", "secret:api_key", "injection:override:en", "injection:exfil:zh"]
    assert hit_kinds([*reasons, "pii:email", "canary"]) == [
        "pii.email",
        "secret.api_key",
        "injection",
        "canary",
    ]


def test_report_appends_reasons_to_the_audit_record_once() -> None:
    ex = Exchange(request_id="r", started=time.perf_counter(), client=None)
    report(None, caller(), ex, ["pii:email"])
    report(None, caller(), ex, ["pii:email", "canary"])
    report(None, caller(), ex, [])
    assert ex.reason == "pii:email,canary"

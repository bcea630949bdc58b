"""Masks, redaction markers, rewriting, and refusal without leaking values."""

from __future__ import annotations

import pytest

from bulkhead.errors import ContentBlocked
from bulkhead.guard import Action, Entity, EntityScanner, PseudonymVault
from bulkhead.guard._actions import mask, redaction, refuse_blocked, rewrite


@pytest.mark.parametrize(
    ("entity", "value", "masked"),
    [
        (Entity.CARD, "4111 1111 1111 1234", "****1234"),
        (Entity.CARD, "6212345678901234564", "****4564"),
        (Entity.EMAIL, "zhang.san@example.com", "z***@example.com"),
        (Entity.PHONE, "13800138000", "138****8000"),
        (Entity.PHONE, "+44 20 7946 0958", "+** ** **** 0958"),
        (Entity.PRC_ID, "11010519491231002X", "**************002X"),
        (Entity.IBAN, "GB82 WEST 1234 5698 7654 32", "GB" + "*" * 16 + "5432"),
        (Entity.IP_ADDRESS, "203.0.113.7", "203.0.*.*"),
        (Entity.IP_ADDRESS, "2001:db8::1", "2001:0db8:0000:*"),
        (Entity.API_KEY, "sk-proj-abcdef1234567890", "sk-p****7890"),
        (Entity.PRIVATE_KEY, "-----BEGIN PRIVATE KEY-----", "[REDACTED:PRIVATE_KEY]"),
    ],
)
def test_masks(entity: Entity, value: str, masked: str) -> None:
    assert mask(entity, value) == masked


def test_redaction_markers_name_the_entity() -> None:
    assert redaction(Entity.CARD) == "[REDACTED:CARD]"
    assert redaction(Entity.BEARER_TOKEN) == "[REDACTED:BEARER_TOKEN]"


def test_rewrite_applies_each_entitys_action() -> None:
    text = "mail a.b@example.com card 4111111111111111 ip 203.0.113.7"
    findings = EntityScanner().find(text)
    actions = {
        Entity.EMAIL: Action.MASK,
        Entity.CARD: Action.REDACT,
        Entity.IP_ADDRESS: Action.DETECT,
    }
    out = rewrite(text, findings, actions.__getitem__, None)
    assert out == "mail a***@example.com card [REDACTED:CARD] ip 203.0.113.7"


def test_rewrite_pseudonymizes_through_the_vault() -> None:
    text = "a@example.com, b@example.com, a@example.com"
    vault = PseudonymVault()
    out = rewrite(text, EntityScanner().find(text), lambda e: Action.PSEUDONYMIZE, vault)
    assert out == "<EMAIL_1>, <EMAIL_2>, <EMAIL_1>"
    assert vault.restore(out) == text


def test_refusal_names_kinds_never_values() -> None:
    text = "card 4111111111111111 and key sk-proj-abcdef1234567890XYZ"
    findings = EntityScanner().find(text)
    with pytest.raises(ContentBlocked) as caught:
        refuse_blocked(findings, lambda e: Action.BLOCK, output=False)
    error = caught.value
    assert error.reasons == ("pii:card", "secret:api_key")
    assert "4111" not in error.message and "sk-proj" not in error.message
    assert error.code == "content_filter"


def test_no_refusal_without_block() -> None:
    findings = EntityScanner().find("card 4111111111111111")
    refuse_blocked(findings, lambda e: Action.REDACT, output=False)

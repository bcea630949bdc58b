"""GuardConfig: secure defaults, validation, and a JSON form for the tenant configuration."""

from __future__ import annotations

import pytest

from bulkhead.guard import Action, Entity, GuardConfig, InjectionMode


def test_defaults_redact_secrets_only_and_flag_injection() -> None:
    config = GuardConfig()
    assert config.action_for(Entity.API_KEY) is Action.REDACT
    assert config.action_for(Entity.PRIVATE_KEY) is Action.REDACT
    assert config.action_for(Entity.EMAIL) is Action.OFF
    assert config.action_for(Entity.CARD) is Action.OFF
    assert config.injection is InjectionMode.FLAG
    assert config.strip_images and not config.strip_links
    assert not config.canary  # opt-in: it changes the prompt the model reads
    assert not config.allow_logprobs
    assert config.enabled_entities() == frozenset(
        {
            Entity.API_KEY,
            Entity.CLOUD_SECRET,
            Entity.BEARER_TOKEN,
            Entity.JWT,
            Entity.PRIVATE_KEY,
            Entity.CREDENTIAL,
        }
    )


def test_per_entity_overrides_win() -> None:
    config = GuardConfig(
        pii=Action.MASK, entities={Entity.CARD: Action.BLOCK, Entity.JWT: Action.OFF}
    )
    assert config.action_for(Entity.CARD) is Action.BLOCK
    assert config.action_for(Entity.EMAIL) is Action.MASK
    assert Entity.JWT not in config.enabled_entities()


def test_json_round_trip() -> None:
    config = GuardConfig(
        pii=Action.PSEUDONYMIZE,
        entities={Entity.CARD: Action.MASK},
        injection=InjectionMode.BLOCK,
        injection_threshold=0.7,
        allowed_link_hosts=("Docs.Example.com.", "*.cdn.example.net"),
        allow_logprobs=True,
    )
    again = GuardConfig.from_json(config.to_json())
    assert again == config and hash(again) == hash(config)
    assert again.allowed_link_hosts == ("*.cdn.example.net", "docs.example.com")
    assert '"card":"mask"' in config.to_json()


def test_missing_keys_take_defaults() -> None:
    assert GuardConfig.from_json('{"pii": "redact"}') == GuardConfig(pii=Action.REDACT)
    assert GuardConfig.from_dict({}) == GuardConfig()


@pytest.mark.parametrize(
    "text",
    [
        '{"pii": "shred"}',
        '{"unknown": 1}',
        '{"entities": {"social_security": "redact"}}',
        '{"entities": {"card": "explode"}}',
        '{"entities": ["card"]}',
        '{"injection": "maybe"}',
        '{"injection_threshold": 0}',
        '{"injection_threshold": 1.5}',
        '{"injection_threshold": "high"}',
        '{"injection_threshold": true}',
        '{"canary": "yes"}',
        '{"allowed_link_hosts": "example.com"}',
        '{"allowed_link_hosts": ["https://example.com/"]}',
        '{"allowed_link_hosts": [7]}',
        '{"phone_regions": ["china"]}',
        '{"stream_window": 8}',
        '{"stream_window": 1e9}',
        '["not", "an", "object"]',
        "not json",
    ],
)
def test_invalid_settings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        GuardConfig.from_json(text)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ValueError):
        GuardConfig(pii="redact")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        GuardConfig(entities={"card": Action.MASK})  # type: ignore[dict-item]


def test_config_is_frozen_and_entities_read_only() -> None:
    config = GuardConfig(entities={Entity.CARD: Action.MASK})
    with pytest.raises(AttributeError):
        config.pii = Action.BLOCK  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.entities[Entity.CARD] = Action.OFF  # type: ignore[index]

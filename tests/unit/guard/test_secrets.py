# ruff: noqa: RUF001 - test texts are Chinese, with its full-width punctuation, on purpose.
"""Credential detectors: provider keys, AWS secrets in context, bearer tokens, JWTs, PEM keys."""

from __future__ import annotations

import base64
import json

import pytest

from bulkhead.guard import Entity, EntityScanner

SCANNER = EntityScanner()
B62 = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYz"


def found(text: str) -> list[tuple[str, str]]:
    return [(f.entity.value, text[f.start : f.end]) for f in SCANNER.find(text)]


KEYS = [
    "sk-proj-" + B62 * 2,
    "sk-ant-api03-" + B62 * 2,
    "sk-" + B62,
    "sk_live_" + B62[:24],
    "rk_test_" + B62[:24],
    "bk_abcdefghijk2_" + (B62 * 2)[:43],
    "ghp_" + (B62 * 2)[:36],
    "github_pat_" + B62[:22] + "_" + (B62 * 2)[:59],
    "xoxb-1234567890-0987654321-" + B62[:24],
    "AIza" + (B62 * 2)[:35],
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
]


@pytest.mark.parametrize("key", KEYS)
def test_api_keys_in_english_and_chinese(key: str) -> None:
    assert found(f"my key is {key}, why 401?") == [("api_key", key)]
    assert found(f"我的密钥是{key}谢谢") == [("api_key", key)]


@pytest.mark.parametrize(
    "text",
    [
        "Use scikit-learn for the sk-learn style pipeline",
        "Our keys look like sk-... and start with a prefix",
        "task-management-system-configuration-settings",
        "the ghp_ prefix marks a GitHub token",
        "AKIA is the prefix of AWS access key ids",
        "The bearer of this letter is my colleague",
        "Set the header to 'Authorization: Bearer <token>'",
        "commit 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12 fixed the secret handling",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIz\n-----END PUBLIC KEY-----",
        "eyJhbGciOi is how a JWT starts",
    ],
)
def test_secret_hard_negatives(text: str) -> None:
    assert found(text) == []


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "text",
    [
        f"aws_secret_access_key = {SECRET}",
        f"AWS_SECRET_ACCESS_KEY={SECRET}",
        f'"SecretAccessKey": "{SECRET}"',
        f"aws secret access key：{SECRET}",
    ],
)
def test_aws_secret_after_a_label(text: str) -> None:
    assert ("cloud_secret", SECRET) in found(text)


def test_aws_secret_near_an_access_key_id() -> None:
    text = f"id AKIAIOSFODNN7EXAMPLE\nkey {SECRET}"
    assert ("cloud_secret", SECRET) in found(text)


def test_forty_base64_characters_alone_are_not_a_secret() -> None:
    assert found(f"the path is {SECRET} on disk") == []


def test_bearer_token_is_the_credential_only() -> None:
    token = "abcDEF123456ghiJKL789mno"
    assert found(f"curl -H 'Authorization: Bearer {token}'") == [("bearer_token", token)]


def _jwt(header: dict[str, str]) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part({'sub': '1234567890'})}.{B62}"


def test_jwt_needs_a_jose_header() -> None:
    good = _jwt({"alg": "HS256", "typ": "JWT"})
    assert found(f"token: {good}") == [("jwt", good)]
    # (After "blob:": after "token:" any such value is a credential, `test_credentials`.)
    assert found(f"blob: {_jwt({'hello': 'world'})}") == []


def test_bearer_jwt_is_reported_once_as_jwt() -> None:
    token = _jwt({"alg": "RS256"})
    assert found(f"Authorization: Bearer {token}") == [("jwt", token)]


PEM = "\n".join(
    [
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEAx1",
        "Z2f3abcdEFGH",
        "-----END RSA PRIVATE KEY-----",
    ]
)


def test_pem_private_key_block_is_one_finding() -> None:
    assert found(f"key:\n{PEM}\nthanks") == [("private_key", PEM)]


def test_pem_block_without_end_runs_to_its_last_base64_line() -> None:
    text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUFBQUFBQUFB\n"
    (entity, value) = found(text + "thanks")[0]
    assert entity == "private_key" and value == text.rstrip("\n")


@pytest.mark.parametrize(
    "label",
    ["PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "PGP PRIVATE KEY BLOCK"],
)
def test_pem_labels(label: str) -> None:
    block = f"-----BEGIN {label}-----\nMIIEvQIBADANBgkqhkiG9w0\n-----END {label}-----"
    assert found(block) == [("private_key", block)]


def test_secrets_only_when_enabled() -> None:
    scanner = EntityScanner({Entity.JWT})
    assert scanner.find(f"key {KEYS[0]}") == []

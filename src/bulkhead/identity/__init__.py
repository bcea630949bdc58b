"""Credentials: API keys, OIDC tokens, passwords, TOTP and sign-in sessions."""

from bulkhead.identity.apikeys import IssuedKey, hash_secret, issue_key, parse_key, verify_secret
from bulkhead.identity.oidc import (
    MappedIdentity,
    OidcValidator,
    claimed_principal,
    invalid_token,
    map_claims,
    peek_issuer,
    token_id,
)

__all__ = [
    "IssuedKey",
    "MappedIdentity",
    "OidcValidator",
    "claimed_principal",
    "hash_secret",
    "invalid_token",
    "issue_key",
    "map_claims",
    "parse_key",
    "peek_issuer",
    "token_id",
    "verify_secret",
]

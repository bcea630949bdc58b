"""Credentials: API keys now; OIDC, sessions and workload identity later."""

from bulkhead.identity.apikeys import IssuedKey, hash_secret, issue_key, parse_key, verify_secret

__all__ = ["IssuedKey", "hash_secret", "issue_key", "parse_key", "verify_secret"]

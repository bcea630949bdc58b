"""The dummy hash a missing account is refused against costs what a real one costs."""

from __future__ import annotations

import argon2

from bulkhead.identity.passwords import Passwords, dummy_hash


def test_the_dummy_hash_has_the_real_hashes_parameters() -> None:
    passwords = Passwords(time_cost=1, memory_kib=1024, parallelism=2)
    real = passwords.hash("correct horse battery")
    assert argon2.extract_parameters(passwords._dummy) == argon2.extract_parameters(real)


def test_no_password_matches_the_dummy_and_each_is_fresh() -> None:
    hasher = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    first, second = dummy_hash(hasher), dummy_hash(hasher)
    assert first != second  # a random salt and digest, not a constant
    for password in ("", "bulkhead-no-such-account", "correct horse battery"):
        try:
            hasher.verify(first, password)
        except argon2.exceptions.VerifyMismatchError:
            continue
        raise AssertionError("a password matched the dummy hash")


def test_verify_dummy_refuses_quietly() -> None:
    Passwords(time_cost=1, memory_kib=1024, parallelism=1).verify_dummy("any password at all")

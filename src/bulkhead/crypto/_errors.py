"""The one error every failed decryption raises."""

from __future__ import annotations

from bulkhead.errors import IntegrityFailure


class DecryptionFailed(IntegrityFailure):
    """A ciphertext did not open: wrong key, wrong context, tampered or truncated.

    It carries no detail on purpose (STYLE rule 7, like cryptography's
    `fernet.InvalidToken`): telling apart a bad tag, an unknown key version and a
    malformed header would help an attacker probe the format.
    """

    code = "decryption_failed"

    def __init__(self) -> None:
        super().__init__("The data could not be decrypted.")

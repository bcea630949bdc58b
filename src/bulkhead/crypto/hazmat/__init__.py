"""Raw primitives with fixed algorithms: the only door to `cryptography.hazmat`.

Nothing outside `bulkhead.crypto` may import this package, and nothing outside
it may import `cryptography.hazmat` (a test walks the source tree to hold both
rules).  Callers above use the safe recipes in `bulkhead.crypto` instead.
"""

from bulkhead.crypto.hazmat._primitives import (
    AES_KEY_SIZE,
    GCM_NONCE_SIZE,
    GCM_TAG_SIZE,
    AesGcm,
    ed25519_valid,
    hkdf_sha256,
)
from bulkhead.crypto.hazmat._x509 import (
    SignatureMismatch,
    certificate_pem,
    generate_p256,
    jwt_key_fits,
    load_private_der,
    private_der,
    private_pem,
    public_key_matches,
    sign_certificate,
    verify_issued_by,
)

__all__ = [
    "AES_KEY_SIZE",
    "GCM_NONCE_SIZE",
    "GCM_TAG_SIZE",
    "AesGcm",
    "SignatureMismatch",
    "certificate_pem",
    "ed25519_valid",
    "generate_p256",
    "hkdf_sha256",
    "jwt_key_fits",
    "load_private_der",
    "private_der",
    "private_pem",
    "public_key_matches",
    "sign_certificate",
    "verify_issued_by",
]

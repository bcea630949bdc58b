"""Logging in to a PKCS#11 token, for `kms_pkcs11.Pkcs11Kms` (first start and reconnects)."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

import pkcs11
from pkcs11 import Mechanism

from bulkhead.errors import ConfigError

# PKCS#11 logs in per application, not per session: a second `C_Login` in the
# same process answers "already logged in" without looking at the PIN.  So the
# process remembers a keyed digest of the PIN each token was logged in with,
# and a later instance must present the same PIN (or it is a wrong PIN).
_PROCESS_SALT = os.urandom(32)
_LOGINS: dict[tuple[str, bytes], bytes] = {}
_LOGINS_LOCK = threading.Lock()


def forget_logins(module_path: str) -> None:
    """After the library is initialised again, no token of it is logged in any more."""
    with _LOGINS_LOCK:
        for login in [k for k in _LOGINS if k[0] == module_path]:
            del _LOGINS[login]


class Pin:
    """The PIN, held only to log in again; its `repr` never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Pin(hidden)"


def open_session(module_path: str, token_label: str, pin: str) -> pkcs11.Session:
    """Log in to the token; every failure is a one-line `ConfigError` without the PIN."""
    try:
        lib = pkcs11.lib(module_path)
    except (pkcs11.PKCS11Error, OSError):
        raise ConfigError(f"The PKCS#11 module {module_path} could not be loaded.") from None
    try:
        token = lib.get_token(token_label=token_label)
    except pkcs11.NoSuchToken:
        raise ConfigError(f"No PKCS#11 token is labelled {token_label!r}.") from None
    except pkcs11.PKCS11Error as exc:
        raise ConfigError(f"The PKCS#11 token list could not be read ({_name(exc)}).") from None
    digest = hmac.new(_PROCESS_SALT, pin.encode(), hashlib.sha256).digest()
    login = (module_path, token.serial)
    with _LOGINS_LOCK:
        try:
            session = token.open(rw=True, user_pin=pin)
            _LOGINS[login] = digest
        except pkcs11.UserAlreadyLoggedIn:
            session = token.open(rw=True)
            known = _LOGINS.get(login)
            if known is not None and not hmac.compare_digest(known, digest):
                session.close()
                raise _wrong_pin(token_label) from None
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
            raise _wrong_pin(token_label) from None
        except pkcs11.PinLocked:
            raise ConfigError(f"The PIN of PKCS#11 token {token_label!r} is locked.") from None
        except pkcs11.PKCS11Error as exc:
            raise ConfigError(
                f"Could not log in to PKCS#11 token {token_label!r} ({_name(exc)})."
            ) from None
    try:
        supported = Mechanism.AES_GCM in token.slot.get_mechanisms()
    except pkcs11.PKCS11Error:
        supported = False
    if not supported:
        session.close()
        raise ConfigError(f"PKCS#11 token {token_label!r} does not offer AES-GCM.")
    return session


def _wrong_pin(token_label: str) -> ConfigError:
    return ConfigError(f"The PIN was rejected by PKCS#11 token {token_label!r}.")


def _name(exc: BaseException) -> str:
    return type(exc).__name__

"""The PKCS#11 KMS when its token goes away and comes back: 503s, then recovery in place.

The token's directory is moved aside (SoftHSM2 then answers as an HSM that
is gone: searches find nothing, the slot list fails) and moved back with
every key in it, as an HSM restarted with its keys would be.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.crypto import DataKey
from bulkhead.crypto._keys import EXPORT_KEY_MATERIAL
from bulkhead.crypto.kms_pkcs11 import RECONNECT_S, Pkcs11Kms
from bulkhead.errors import KmsUnavailable
from tests.support.softhsm import SoftHsm


def _token_dir() -> Path:
    conf = Path(os.environ["SOFTHSM2_CONF"]).read_text()
    line = next(x for x in conf.splitlines() if x.startswith("directories.tokendir"))
    return Path(line.split("=", 1)[1].strip())


@pytest.fixture
def away(softhsm: SoftHsm) -> Iterator[tuple[Path, Path]]:
    """(token directory, where it is moved to); always moved back."""
    tokens = _token_dir()
    (entry,) = [e for e in tokens.iterdir() if e.is_dir()]
    aside = tokens.parent / f"aside-{entry.name}"
    yield entry, aside
    if aside.exists():
        aside.rename(entry)


def _until_back(op: object, deadline_s: float = 5.0) -> float:
    start = time.monotonic()
    while True:
        try:
            op()  # type: ignore[operator]
            return time.monotonic() - start
        except KmsUnavailable:
            assert time.monotonic() - start < deadline_s, "the KMS did not reconnect"
            time.sleep(RECONNECT_S / 5)


def test_token_gone_is_503_and_back_is_recovered_without_restart(
    softhsm: SoftHsm, away: tuple[Path, Path]
) -> None:
    kms = Pkcs11Kms(*softhsm)
    tenant = f"hsm-{uuid.uuid4().hex[:12]}"
    kms.create_tenant(tenant)
    version, wrapped = kms.wrap_dek(tenant, DataKey.generate(), b"aad")
    entry, aside = away
    entry.rename(aside)
    # Every key operation says "unavailable" (503), never "no such key" or "cannot decrypt",
    # and never makes a tenant key anew in a token that is not there.
    for op in (
        lambda: kms.wrap_dek(tenant, DataKey.generate(), b"aad"),
        lambda: kms.unwrap_dek(tenant, version, wrapped, b"aad"),
        lambda: kms.status(tenant),
        lambda: kms.create_tenant(f"{tenant}-new"),
    ):
        with pytest.raises(KmsUnavailable) as caught:
            op()
        assert caught.value.code == "kms_unavailable"
        assert softhsm.pin not in str(caught.value)
    aside.rename(entry)
    _until_back(lambda: kms.status(tenant))
    again = kms.unwrap_dek(tenant, version, wrapped, b"aad")
    assert len(again.reveal(EXPORT_KEY_MATERIAL)) == 32
    assert kms.status(tenant).primary == 1
    kms.close()


def test_a_session_ended_underneath_is_503_once_then_logs_in_again(softhsm: SoftHsm) -> None:
    """Another instance initialising the library again ends this one's session."""
    first = Pkcs11Kms(*softhsm)
    tenant = f"hsm-{uuid.uuid4().hex[:12]}"
    first.create_tenant(tenant)
    import pkcs11

    pkcs11.lib(softhsm.module_path).reinitialize()  # every session of the process ends
    with pytest.raises(KmsUnavailable):
        first.status(tenant)
    _until_back(lambda: first.status(tenant))
    assert first.status(tenant).primary == 1
    first.close()

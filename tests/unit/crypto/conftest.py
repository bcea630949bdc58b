from __future__ import annotations

import pytest

from bulkhead.crypto import Kek, LocalKms, MemoryKekStore


@pytest.fixture
def kms() -> LocalKms:
    kms = LocalKms(MemoryKekStore(), Kek.generate())
    kms.create_tenant("acme")
    kms.create_tenant("globex")
    return kms

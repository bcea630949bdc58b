"""What a started gateway has ready, and has not loaded, before its first call."""

from __future__ import annotations

from pathlib import Path

from bulkhead.limits import O200kCounter
from tests.support.gateway import GatewayThread


def test_the_o200k_encoder_is_built_before_the_gateway_listens(tmp_path: Path) -> None:
    gw = GatewayThread(tmp_path / "data", None).start()
    try:
        assert gw.app.admission is not None
        counter = gw.app.admission.counter
        assert isinstance(counter, O200kCounter)
        # No call has been made: start-up built it, so the first counted call never waits.
        assert counter.ready
        assert counter.count("hello world") == 2
    finally:
        gw.stop()

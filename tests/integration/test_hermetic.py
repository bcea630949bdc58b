"""The suite runs beside another Bulkhead: a gateway and its fake upstream, on their own ports.

`make run` in another checkout holds 8080 and 9464; here they are held for
the test (`tests.support.ports`), and a gateway with a model, a key and a
model call — the integration tests' usual set-up — works all the same.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.gateway import GatewayThread, UpstreamThread, http
from tests.support.ports import DEFAULT_PORTS, default_ports_taken
from tests.support.postgres import free_port


def test_a_gateway_under_test_works_while_the_default_ports_are_taken(tmp_path: Path) -> None:
    with default_ports_taken():
        upstream = UpstreamThread().start()
        gateway = GatewayThread(tmp_path / "data", None).start()
        try:
            assert {gateway.port, upstream.port}.isdisjoint(DEFAULT_PORTS)
            gateway.tenant("beside")
            gateway.model("beside-m", upstream.url, grant=("beside",), upstream_model="fake")
            key = gateway.key("beside")
            body = {"model": "beside-m", "messages": [{"role": "user", "content": "hi"}]}
            answer = gateway.call("POST", "/v1/chat/completions", key, body)
            assert answer.status == 200, answer.body
            metrics = free_port()
            gateway.app.metrics.serve("127.0.0.1", metrics)
            text = http("GET", f"http://127.0.0.1:{metrics}/metrics").raw.decode()
            assert 'tenant="beside"' in text
        finally:
            gateway.stop()
            upstream.stop()

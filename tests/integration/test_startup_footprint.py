"""What a started gateway has ready, and has not built, before its first call."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bulkhead.limits import O200kCounter, _o200k
from tests.support.gateway import GatewayThread, UpstreamThread


def test_the_o200k_encoder_is_built_right_after_the_first_answer(tmp_path: Path) -> None:
    upstream = UpstreamThread().start()
    gw = GatewayThread(tmp_path / "data", None).start()
    try:
        assert gw.app.admission is not None
        counter = gw.app.admission.counter
        assert isinstance(counter, O200kCounter)
        assert not counter.ready  # start-up checked the vocabulary, built nothing
        gw.tenant("first")  # the shared tier's finite limits: admission reserves tokens
        gw.model("first-m", upstream.url, grant=("first",), upstream_model="fake")
        key = gw.key("first")
        body = {"model": "first-m", "messages": [{"role": "user", "content": "hello world"}]}
        answer = gw.call("POST", "/v1/chat/completions", key, {**body, "max_tokens": 5})
        assert answer.status == 200, answer.body
        # Admitted against the bound (3 + 3 + 1 + 11 bytes + 5), charged what it used.
        limit = int(answer.headers["x-ratelimit-limit-tokens"])
        assert answer.headers["x-ratelimit-remaining-tokens"] == str(limit - 23)
        deadline = time.monotonic() + 10
        while not counter.ready and time.monotonic() < deadline:
            time.sleep(0.01)
        assert counter.ready  # built on the event loop after that answer
        assert counter.count("hello world") == 2
        again = gw.call("POST", "/v1/chat/completions", key, {**body, "max_tokens": 5})
        assert again.status == 200
        used = answer.body["usage"]["total_tokens"]
        # Now counted: the prompt's 9 tokens + 5, after the first call's settled usage.
        assert again.headers["x-ratelimit-remaining-tokens"] == str(limit - used - 14)
    finally:
        gw.stop()
        upstream.stop()


def test_a_damaged_vocabulary_stops_the_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_o200k, "COMPACT_SHA256", "0" * 64)
    gw = GatewayThread(tmp_path / "data", None)
    with pytest.raises(RuntimeError, match="did not start"):
        gw.start()

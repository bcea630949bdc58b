"""Training tokens count against the tenant's token budgets, through a real gateway.

A job whose estimate does not fit what is left of `tokens_per_day` is refused
at `create` with the error a model call gets; the tokens a job trained on are
charged to the counters the limiter reads, so once they spend the budget a
model call is refused too, with the same error.  (The budgets live in the
limiter, not in the database: one backend is enough here; the queue on both
is tests/integration/test_finetune_api.py.)
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest

from bulkhead.store import repo
from bulkhead.testing.fake_runner import TOKENS_PER_STEP, FakeRunner
from tests.support.gateway import GatewayThread

BASE = "smol-budget"
COUNT = 40
EXAMPLE = {
    "messages": [
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
    ]
}
GOOD = b"\n".join(orjson.dumps(EXAMPLE) for _ in range(COUNT)) + b"\n"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayThread, FakeRunner]]:
    runner = FakeRunner()
    data: Path = tmp_path_factory.mktemp("budget") / "data"
    env = {"BULKHEAD_FINE_TUNING_JOBS": "1", "BULKHEAD_FINE_TUNING_POLL_MS": "100"}
    gateway = GatewayThread(data, None, env=env, fine_tuning_runner=runner).start()
    gateway.must("POST", "/admin/v1/models", {"name": BASE, "worker": "smollm2-135m"})
    yield gateway, runner
    gateway.stop()


def test_training_tokens_spend_the_budget_that_model_calls_spend(
    gw: tuple[GatewayThread, FakeRunner],
) -> None:
    gateway, runner = gw
    service = gateway.app.fine_tuning
    assert service is not None and service.budget is not None
    counter = service.budget.admission.counter
    getattr(counter, "load", lambda: None)()  # the o200k count from the start, not bytes
    estimate = service.budget.estimate([EXAMPLE] * COUNT, 1)
    day = 2 * estimate + 1
    assert estimate > 3 * TOKENS_PER_STEP  # the fake runner charges that much as it goes

    gateway.tenant("bud")
    gateway.must("POST", f"/admin/v1/models/{BASE}/grants", {"tenant": "bud"})
    gateway.model("bud-remote", "http://127.0.0.1:9/v1", grant=("bud",))
    with gateway.app.db.platform_transaction() as session:
        repo.set_tenant_limits(session, "bud", {"tokens_per_day": day})
    gateway.app.catalog.reload()
    key = gateway.key("bud", role="model_developer")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    training = str(client.files.create(file=("t.jsonl", io.BytesIO(GOOD)), purpose="fine-tune").id)  # type: ignore[arg-type]

    def create(epochs: int) -> tuple[int, dict[str, object]]:
        body = {"model": BASE, "training_file": training, "hyperparameters": {"n_epochs": epochs}}
        made = gateway.call("POST", "/v1/fine_tuning/jobs", key, body)
        return made.status, made.body

    # Three epochs do not fit the day's budget: refused before any job exists.
    status, body = create(3)
    assert status == 429, body
    refused = body["error"]
    assert refused["message"] == "Rate limit exceeded (tenant tokens_per_day)."  # type: ignore[index]
    assert gateway.call("GET", "/v1/fine_tuning/jobs", key).body["data"] == []

    # One fits; it trains on all but `estimate` of the budget (charged as the events come).
    status, body = create(1)
    assert status == 200, body
    job_id = str(body["id"])
    runner.succeed(job_id, tokens=day - estimate + 1)
    deadline = time.monotonic() + 10
    while (done := gateway.call("GET", f"/v1/fine_tuning/jobs/{job_id}", key)).body[
        "status"
    ] != "succeeded":
        assert time.monotonic() < deadline, done.body
        time.sleep(0.02)
    assert done.body["trained_tokens"] == day - estimate + 1

    # What is left no longer fits one epoch; a model call is refused the same way.
    status, body = create(1)
    assert (status, body["error"]) == (429, refused)
    chat = {"model": "bud-remote", "messages": [{"role": "user", "content": "x" * 400}]}
    called = gateway.call("POST", "/v1/chat/completions", key, chat)
    assert (called.status, called.body["error"]) == (429, refused)

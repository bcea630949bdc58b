"""A tenant's fine-tuned models are bounded (`BULKHEAD_TENANT_MAX_TUNED_MODELS`).

Each fine-tuning job that succeeds stores a LoRA adapter and registers a model of the
tenant: a model in every replica's catalog and an adapter its base's server loads.  Nothing
counted them, so a tenant's developers could make models without end, one cheap job each.
A job is refused (409, naming the setting) when the tenant's models and its jobs that may
still make one reach the bound, and the store refuses one model more in any case."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import orjson
import pytest

from bulkhead.app.history import Retention, purge_history
from bulkhead.errors import Conflict
from bulkhead.testing.fake_runner import FakeRunner, fake_adapter
from tests.support.gateway import GatewayThread

SETTING = "BULKHEAD_TENANT_MAX_TUNED_MODELS"
JOBS = "BULKHEAD_TENANT_MAX_FINE_TUNING_JOBS"
BASE = "smol-bound"
EXAMPLE = {
    "messages": [
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
    ]
}
GOOD = b"\n".join(orjson.dumps(EXAMPLE) for _ in range(20)) + b"\n"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayThread, FakeRunner]]:
    runner = FakeRunner()
    data = tmp_path_factory.mktemp("tuned-bound") / "data"
    env = {
        "BULKHEAD_FINE_TUNING_JOBS": "1",
        "BULKHEAD_FINE_TUNING_POLL_MS": "100",
        SETTING: "2",
        JOBS: "3",
    }
    gateway = GatewayThread(data, None, env=env, fine_tuning_runner=runner).start()
    gateway.must("POST", "/admin/v1/models", {"name": BASE, "worker": "smollm2-135m"})
    yield gateway, runner
    gateway.stop()


def _developer(gateway: GatewayThread, name: str) -> tuple[str, str]:
    """(the tenant's id, a model developer's key) of a new tenant granted the base."""
    tenant_id = str(gateway.tenant(name)["id"])
    gateway.must("POST", f"/admin/v1/models/{BASE}/grants", {"tenant": name})
    gateway.app.catalog.reload()
    return tenant_id, gateway.key(name, role="model_developer")


def _job(gateway: GatewayThread, key: str) -> Any:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    made = client.files.create(file=("t.jsonl", io.BytesIO(GOOD)), purpose="fine-tune")  # type: ignore[arg-type]
    body = {"model": BASE, "training_file": made.id, "hyperparameters": {"n_epochs": 1}}
    return gateway.call("POST", "/v1/fine_tuning/jobs", key, body)


def _wait(gateway: GatewayThread, key: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while (got := gateway.call("GET", f"/v1/fine_tuning/jobs/{job_id}", key)).body[
        "status"
    ] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, got.body
        time.sleep(0.02)
    return got.body


def _refused(answer: Any) -> None:
    assert answer.status == 409, answer.body
    assert SETTING in answer.body["error"]["message"], answer.body


def test_jobs_and_models_stop_at_the_operators_setting(
    gw: tuple[GatewayThread, FakeRunner],
) -> None:
    gateway, runner = gw
    tenant_id, key = _developer(gateway, "tuned-bound")
    jobs = [_job(gateway, key) for _ in range(3)]
    assert [j.status for j in jobs[:2]] == [200, 200], [j.body for j in jobs]
    _refused(jobs[2])  # two jobs that may each make a model already take the bound
    tuned = []
    for job in jobs[:2]:
        runner.succeed(str(job.body["id"]))
        done = _wait(gateway, key, str(job.body["id"]))
        assert done["status"] == "succeeded", done
        tuned.append(str(done["fine_tuned_model"]))
    _refused(_job(gateway, key))  # two models held
    # A job that got past `create` (the setting lowered meanwhile) meets the store's bound.
    artifacts = gateway.app.artifacts
    assert artifacts is not None
    with pytest.raises(Conflict, match=SETTING):
        name = f"ft:smollm2-135m:{tenant_id}:more:ftjob-{0:024d}"
        artifacts.import_adapter(tenant_id, name, "smollm2-135m", fake_adapter())
    assert gateway.call("DELETE", f"/v1/models/{tuned[0]}", key).status == 200
    assert _job(gateway, key).status == 200  # room again
    # Another tenant has its own count.
    _, other = _developer(gateway, "tuned-bound-b")
    assert _job(gateway, key).status == 409
    assert _job(gateway, other).status == 200


def test_finished_jobs_count_until_maintenance_deletes_them(
    gw: tuple[GatewayThread, FakeRunner],
) -> None:
    """Created and cancelled at once, a job made a row (and its events) kept for ever: a
    developer could make them without end.  Finished jobs count towards
    `BULKHEAD_TENANT_MAX_FINE_TUNING_JOBS` until the maintenance loop deletes them after
    `BULKHEAD_FINE_TUNING_JOB_RETENTION_DAYS`; then they answer 404 like any other."""
    gateway, _ = gw
    _, key = _developer(gateway, "jobs-bound")
    ids = []
    for _ in range(3):
        made = _job(gateway, key)
        assert made.status == 200, made.body
        ids.append(str(made.body["id"]))
        cancel = gateway.call("POST", f"/v1/fine_tuning/jobs/{ids[-1]}/cancel", key)
        assert cancel.status == 200 and cancel.body["status"] == "cancelled", cancel.body
    refused = _job(gateway, key)
    assert refused.status == 409 and JOBS in refused.body["error"]["message"], refused.body
    later = datetime.now(UTC) + timedelta(days=181)  # past the default 180 days
    done = purge_history(gateway.app.db, gateway.app.audit, Retention(), later)
    assert done["fine_tuning_jobs_purged"] >= 3, done
    for job_id in ids:
        assert gateway.call("GET", f"/v1/fine_tuning/jobs/{job_id}", key).status == 404
        events = gateway.call("GET", f"/v1/fine_tuning/jobs/{job_id}/events", key)
        assert events.status == 404, events.body
    assert _job(gateway, key).status == 200  # room again

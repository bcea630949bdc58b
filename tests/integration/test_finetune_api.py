"""`/v1/fine_tuning/jobs` through a real gateway: the OpenAI SDK, isolation, checks, the queue.

The runner is `bulkhead.testing.fake_runner`: each job emits three events and
then ends when the test says so, so the queue's order (fair share, each
tenant's concurrency limit) is observed exactly.  The gateway trains at most
`CAPACITY` jobs at once; every test ends the jobs it starts.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import orjson
import pytest

from bulkhead.errors import InvalidRequest
from bulkhead.store import repo
from bulkhead.store.schema import ModelArtifactFileRow
from bulkhead.testing.fake_runner import FakeRunner, fake_adapter
from tests.conftest import BACKENDS, database_urls
from tests.support.gateway import GatewayThread

CAPACITY = 2
BASE = "smol-ft"
EXAMPLE = {
    "messages": [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
    ]
}
GOOD = b"\n".join(orjson.dumps(EXAMPLE) for _ in range(4)) + b"\n"


class World:
    def __init__(self, gw: GatewayThread, runner: FakeRunner):
        self.gw, self.runner = gw, runner
        self.keys: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    def tenant(self, name: str, tier: str = "shared", **quotas: Any) -> str:
        self.ids[name] = self.gw.tenant(name, tier)["id"]
        self.gw.must("POST", f"/admin/v1/models/{BASE}/grants", {"tenant": name})
        if quotas:
            with self.gw.app.db.platform_transaction() as session:
                repo.set_tenant_limits(session, name, quotas)
            self.gw.app.catalog.reload()
        self.keys[name] = self.gw.key(name, role="model_developer")
        return self.keys[name]

    def client(self, name: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.gw.url + "/v1", api_key=self.keys[name], max_retries=0, timeout=20
        )

    def upload(self, name: str, data: bytes = GOOD, purpose: str = "fine-tune") -> str:
        made = self.client(name).files.create(file=("t.jsonl", io.BytesIO(data)), purpose=purpose)  # type: ignore[arg-type]
        return str(made.id)

    def create(self, name: str, **body: Any) -> Any:
        body = {"model": BASE, "training_file": self.upload(name), **body}
        return self.gw.call("POST", "/v1/fine_tuning/jobs", self.keys[name], body)

    def job(self, name: str, **body: Any) -> str:
        made = self.create(name, **body)
        assert made.status == 200, made.body
        return str(made.body["id"])

    def status(self, name: str, job_id: str) -> str:
        got = self.gw.call("GET", f"/v1/fine_tuning/jobs/{job_id}", self.keys[name])
        assert got.status == 200, got.body
        return str(got.body["status"])

    def until(self, name: str, job_id: str, status: str) -> None:
        deadline = time.monotonic() + 10
        while (now := self.status(name, job_id)) != status:
            assert time.monotonic() < deadline, (job_id, now, status)
            time.sleep(0.02)


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    url, admin = database_urls(request.param, request)
    runner = FakeRunner()
    gw = GatewayThread(
        tmp_path_factory.mktemp("ft") / "data",
        url,
        admin_url=admin,
        env={"BULKHEAD_FINE_TUNING_JOBS": str(CAPACITY)},
        fine_tuning_runner=runner,
    ).start()
    gw.must("POST", "/admin/v1/models", {"name": BASE, "worker": "smollm2-135m"})
    yield World(gw, runner)
    gw.stop()


def _ended(world: World, name: str, *job_ids: str) -> None:
    """Cancel what is still queued or running, so the next test finds the queue empty."""
    for job_id in job_ids:
        world.gw.call("POST", f"/v1/fine_tuning/jobs/{job_id}/cancel", world.keys[name])
    deadline = time.monotonic() + 10
    while world.runner.running():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_round_trip_with_the_sdk(world: World) -> None:
    world.tenant("ft-sdk")
    tenant_id = world.ids["ft-sdk"]
    client = world.client("ft-sdk")
    training, validation = world.upload("ft-sdk"), world.upload("ft-sdk")
    job = client.fine_tuning.jobs.create(
        model=BASE,
        training_file=training,
        validation_file=validation,
        hyperparameters={"n_epochs": 2, "batch_size": 2, "learning_rate_multiplier": 0.5},
        suffix="sky",
        seed=7,
        extra_body={"bulkhead": {"lora_rank": 4, "max_seq_len": 128}},
    )
    assert job.object == "fine_tuning.job" and job.status in ("queued", "running")
    assert job.organization_id == tenant_id and job.fine_tuned_model is None
    handle = world.runner.wait_started(job.id)
    assert len(handle.job.training) == 4 and len(handle.job.validation) == 4
    assert handle.job.base == "smollm2-135m" and handle.job.hyper.epochs == 2
    assert (handle.job.hyper.lora_rank, handle.job.hyper.max_seq_len) == (4, 128)
    assert (handle.job.hyper.seed, handle.job.hyper.learning_rate_multiplier) == (7, 0.5)
    world.runner.succeed(job.id, tokens=1234)
    world.until("ft-sdk", job.id, "succeeded")
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model == f"ft:{BASE}:{tenant_id}:sky:{job.id}"
    assert done.trained_tokens == 1234 and done.finished_at is not None
    assert done.hyperparameters.n_epochs == 2
    assert job.id in [j.id for j in client.fine_tuning.jobs.list()]
    events = client.fine_tuning.jobs.list_events(job.id, limit=50).data
    assert events[0].message == "The job has successfully completed."
    assert any(e.type == "metrics" for e in events)
    assert {"Job queued" in e.message or "validated" in e.message for e in events} >= {True}
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [3]
    assert checkpoints[0].metrics.valid_loss is not None
    # Every state change is audited; the trained tokens are a model call of the tenant.
    audited = [e for e in world.gw.audit_events() if e.get("resource") == job.id]
    actions = [e["action"] for e in audited]
    for status in ("queued", "running", "succeeded"):
        assert f"system:fine_tuning.job.{status}" in actions
    assert "v1:fine_tuning.jobs.create" in actions and "v1:fine_tuning.jobs.get" in actions
    train = [e for e in audited if e["action"] == "v1:fine_tuning.train"]
    assert len(train) == 1 and train[0]["prompt_tokens"] == 1234
    assert train[0]["tenant_id"] == tenant_id and train[0]["model"] == BASE
    # The adapter is the tenant's private model now, listed for it alone.
    assert done.fine_tuned_model in {m.id for m in client.models.list()}
    world.tenant("ft-sdk-other")
    assert done.fine_tuned_model not in {m.id for m in world.client("ft-sdk-other").models.list()}


def test_a_refused_adapter_fails_the_job_and_registers_nothing(world: World) -> None:
    world.tenant("ft-bad")
    client = world.client("ft-bad")
    before = {m.id for m in client.models.list()}
    hostile = (
        ("adapter_config.json", b'{"r": 2, "lora_alpha": 4, "target_modules": ["../x"]}'),
        ("adapter_model.safetensors", b"not safetensors"),
    )
    job_id = world.job("ft-bad")
    world.runner.succeed(job_id, adapter=hostile)
    world.until("ft-bad", job_id, "failed")
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.fine_tuned_model is None and job.error is not None
    assert job.error.code == "invalid_data" and "adapter" in job.error.message
    assert {m.id for m in client.models.list()} == before
    tenant_id = world.ids["ft-bad"]
    blobs = world.gw.settings.data_dir / "blobs" / tenant_id / "model"
    assert not blobs.exists() or list(blobs.iterdir()) == []


def test_a_job_cancelled_while_its_adapter_is_stored_gets_no_model(world: World) -> None:
    world.tenant("ft-late")
    tenant_id, client = world.ids["ft-late"], world.client("ft-late")
    job_id = world.job("ft-late")
    world.runner.wait_started(job_id)
    _ended(world, "ft-late", job_id)
    tuning = world.gw.app.fine_tuning
    assert tuning is not None and tuning.on_adapter is not None
    job = tuning.jobs.get(tenant_id, job_id)
    with pytest.raises(InvalidRequest, match="cancelled"):
        tuning.on_adapter(job, fake_adapter())  # as if the cancel landed while it stored
    world.gw.app.catalog.reload()
    assert not any(m.id.startswith("ft:") for m in client.models.list())
    assert not any(d.model.name.startswith("ft:") and d.model.owner_tenant_id == tenant_id
                   for d in world.gw.app.catalog.snapshot.deployments)  # fmt: skip
    blobs = world.gw.settings.data_dir / "blobs" / tenant_id / "model"
    assert not blobs.exists() or list(blobs.iterdir()) == []
    with world.gw.app.db.tenant_transaction(tenant_id) as session:
        rows = session.query(ModelArtifactFileRow).filter_by(tenant_id=tenant_id)
        assert rows.count() == 0


def test_another_tenant_gets_not_found(world: World) -> None:
    world.tenant("ft-iso-a")
    world.tenant("ft-iso-b")
    job_id = world.job("ft-iso-a")
    world.runner.wait_started(job_id)
    b = world.keys["ft-iso-b"]
    for method, path in (
        ("GET", f"/v1/fine_tuning/jobs/{job_id}"),
        ("POST", f"/v1/fine_tuning/jobs/{job_id}/cancel"),
        ("GET", f"/v1/fine_tuning/jobs/{job_id}/events"),
        ("GET", f"/v1/fine_tuning/jobs/{job_id}/checkpoints"),
        ("GET", f"/v1/fine_tuning/jobs?after={job_id}"),
    ):
        answer = world.gw.call(method, path, b)
        assert answer.status == 404, (path, answer.body)
    listed = world.gw.call("GET", "/v1/fine_tuning/jobs", b)
    assert listed.status == 200 and listed.body["data"] == []
    # Another tenant's file is "not found" too, as a training or a validation file.
    foreign = world.upload("ft-iso-a")
    for field in ("training_file", "validation_file"):
        body = {"model": BASE, "training_file": world.upload("ft-iso-b"), field: foreign}
        answer = world.gw.call("POST", "/v1/fine_tuning/jobs", b, body)
        assert answer.status == 404 and answer.body["error"]["param"] == field
    assert world.status("ft-iso-a", job_id) == "running"  # untouched by B's cancel
    _ended(world, "ft-iso-a", job_id)


@pytest.mark.parametrize(
    ("data", "purpose", "line"),
    [
        (GOOD + b"{not json\n", "fine-tune", "line 5: not valid JSON"),
        (GOOD + b'{"messages": []}\n', "fine-tune", "line 5:"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}\n', "fine-tune", "line 1:"),
        (
            b"\n\n" + orjson.dumps({"messages": [{"role": "robot", "content": "x"}]}),
            "fine-tune",
            "line 3:",
        ),
        (GOOD, "assistants", "purpose"),
    ],
)
def test_bad_training_files_are_refused_before_a_job_exists(
    world: World, data: bytes, purpose: str, line: str
) -> None:
    if "ft-files" not in world.keys:
        world.tenant("ft-files")
    file_id = world.upload("ft-files", data, purpose)
    body = {"model": BASE, "training_file": file_id}
    answer = world.gw.call("POST", "/v1/fine_tuning/jobs", world.keys["ft-files"], body)
    assert answer.status == 400, answer.body
    assert (
        answer.body["error"]["param"] == "training_file" and line in answer.body["error"]["message"]
    )
    assert EXAMPLE["messages"][1]["content"] not in answer.raw.decode()  # never quotes the data
    listed = world.gw.call("GET", "/v1/fine_tuning/jobs", world.keys["ft-files"])
    assert listed.body["data"] == []


def test_models_must_be_granted_and_trainable(world: World) -> None:
    key = world.tenant("ft-models")
    world.gw.must("POST", "/admin/v1/models", {"name": "ungranted-smol", "worker": "smollm2-135m"})
    world.gw.must(
        "POST", "/admin/v1/models", {"name": "remote", "upstream": "http://127.0.0.1:9/v1"}
    )
    world.gw.must("POST", "/admin/v1/models/remote/grants", {"tenant": "ft-models"})
    training = world.upload("ft-models")
    for model, status, code in (
        ("ungranted-smol", 404, "model_not_found"),
        ("no-such-model", 404, "model_not_found"),
        ("remote", 400, "model_not_trainable"),
    ):
        body = {"model": model, "training_file": training}
        answer = world.gw.call("POST", "/v1/fine_tuning/jobs", key, body)
        assert (answer.status, answer.body["error"]["code"]) == (status, code), answer.body


@pytest.mark.parametrize(
    ("tier", "body", "param"),
    [
        ("shared", {"hyperparameters": {"n_epochs": 6}}, "hyperparameters.epochs"),
        ("shared", {"bulkhead": {"lora_rank": 32}}, "hyperparameters.lora_rank"),
        ("shared", {"bulkhead": {"max_seq_len": 4096}}, "hyperparameters.max_seq_len"),
        ("shared", {"hyperparameters": {"batch_size": 0}}, "hyperparameters.batch_size"),
        ("dedicated", {"hyperparameters": {"learning_rate_multiplier": 0}}, None),
        ("dedicated", {"hyperparameters": {"n_epochs": 21}}, "hyperparameters.epochs"),
        ("shared", {"hyperparameters": {"n_epochs": True}}, "hyperparameters.epochs"),
        ("shared", {"hyperparameters": {"momentum": 1}}, "hyperparameters.momentum"),
        ("shared", {"suffix": "no spaces"}, "suffix"),
        ("shared", {"organisation": "x"}, "organisation"),
    ],
)
def test_hyper_parameters_are_bounded_per_tier(
    world: World, tier: str, body: dict[str, Any], param: str | None
) -> None:
    name = f"ft-hyper-{tier}"
    if name not in world.keys:
        world.tenant(name, tier)
    answer = world.create(name, **body)
    assert answer.status == 400, answer.body
    if param is not None:
        assert answer.body["error"]["param"] == param


def test_a_dedicated_tenant_may_train_longer(world: World) -> None:
    if "ft-hyper-dedicated" not in world.keys:
        world.tenant("ft-hyper-dedicated", "dedicated")
    job_id = world.job("ft-hyper-dedicated", hyperparameters={"n_epochs": 12})
    assert world.runner.wait_started(job_id).job.hyper.epochs == 12
    world.runner.fail(job_id, "nan_loss")
    world.until("ft-hyper-dedicated", job_id, "failed")
    got = world.gw.call("GET", f"/v1/fine_tuning/jobs/{job_id}", world.keys["ft-hyper-dedicated"])
    assert got.body["error"]["code"] == "nan_loss" and got.body["fine_tuned_model"] is None


def test_listing_and_events_page(world: World) -> None:
    key = world.tenant("ft-pages", fine_tuning_concurrency=0)  # nothing starts: all stay queued
    made = [world.job("ft-pages") for _ in range(3)]
    first = world.gw.call("GET", "/v1/fine_tuning/jobs?limit=2", key).body
    assert [j["id"] for j in first["data"]] == made[::-1][:2] and first["has_more"] is True
    rest = world.gw.call("GET", f"/v1/fine_tuning/jobs?limit=2&after={first['last_id']}", key)
    assert [j["id"] for j in rest.body["data"]] == made[:1] and rest.body["has_more"] is False
    events = world.gw.call("GET", f"/v1/fine_tuning/jobs/{made[0]}/events?limit=1", key).body
    assert len(events["data"]) == 1 and events["has_more"] is True
    after = events["data"][0]["id"]
    older = world.gw.call("GET", f"/v1/fine_tuning/jobs/{made[0]}/events?after={after}", key)
    assert len(older.body["data"]) == 1 and older.body["has_more"] is False
    for bad in ("limit=0", "limit=101", "limit=x", "after=ftjob-nope"):
        answer = world.gw.call("GET", f"/v1/fine_tuning/jobs?{bad}", key)
        assert answer.status in (400, 404), (bad, answer.body)
    _ended(world, "ft-pages", *made)
    assert all(world.status("ft-pages", j) == "cancelled" for j in made)


@pytest.mark.serial
def test_cancel_queued_and_running_jobs(world: World) -> None:
    key = world.tenant("ft-cancel")  # shared: one job at a time
    running, queued = world.job("ft-cancel"), world.job("ft-cancel")
    handle = world.runner.wait_started(running)
    assert world.status("ft-cancel", queued) == "queued"
    answer = world.gw.call("POST", f"/v1/fine_tuning/jobs/{queued}/cancel", key)
    assert answer.status == 200 and answer.body["status"] == "cancelled"
    started = time.monotonic()
    answer = world.gw.call("POST", f"/v1/fine_tuning/jobs/{running}/cancel", key)
    assert answer.status == 200 and answer.body["status"] == "cancelled"
    assert handle.cancelled and time.monotonic() - started < 5
    again = world.gw.call("POST", f"/v1/fine_tuning/jobs/{running}/cancel", key)
    assert again.status == 200 and again.body["status"] == "cancelled"
    assert queued not in world.runner.handles  # a cancelled queued job never starts
    actions = [e["action"] for e in world.gw.audit_events() if e.get("resource") == running]
    assert actions.count("system:fine_tuning.job.cancelled") == 1


def test_each_tenant_runs_at_most_its_limit(world: World) -> None:
    world.tenant("ft-limit")  # shared: fine_tuning_concurrency 1
    first, second = world.job("ft-limit"), world.job("ft-limit")
    world.runner.wait_started(first)
    time.sleep(0.3)  # a free slot (CAPACITY is 2) must still not start the second
    assert world.status("ft-limit", second) == "queued" and second not in world.runner.handles
    world.runner.succeed(first)
    world.runner.wait_started(second)
    world.runner.succeed(second)
    world.until("ft-limit", second, "succeeded")


def test_tenants_share_the_queue_fairly(world: World) -> None:
    world.tenant("ft-busy", fine_tuning_concurrency=2)
    world.tenant("ft-quiet")
    busy = [world.job("ft-busy") for _ in range(4)]  # two run, two wait
    for job_id in busy[:2]:
        world.runner.wait_started(job_id)
    quiet = world.job("ft-quiet")  # waits behind the full capacity, after busy's two
    world.runner.succeed(busy[0])
    world.runner.wait_started(quiet)  # the quiet tenant goes first: it has nothing running
    assert busy[2] not in world.runner.handles
    world.runner.succeed(busy[1])
    world.runner.wait_started(busy[2])
    order = world.runner.order
    assert order.index(quiet) < order.index(busy[2])
    for job_id in (quiet, busy[2]):
        world.runner.succeed(job_id)
    world.runner.succeed(world.runner.wait_started(busy[3]).job_id)
    world.until("ft-busy", busy[3], "succeeded")


def test_end_users_may_not_fine_tune(world: World) -> None:
    world.tenant("ft-users")
    user = world.gw.key("ft-users")  # role end_user
    training = world.upload("ft-users")
    body = {"model": BASE, "training_file": training}
    assert world.gw.call("POST", "/v1/fine_tuning/jobs", user, body).status == 403
    assert world.gw.call("GET", "/v1/fine_tuning/jobs", user).status == 403


def test_malformed_requests_are_4xx(world: World) -> None:
    key = world.tenant("ft-fuzz")
    training = world.upload("ft-fuzz")
    bodies: list[Any] = [
        {},
        {"model": BASE},
        {"model": 1, "training_file": training},
        {"model": BASE, "training_file": ["x"]},
        {"model": BASE, "training_file": "../../etc/passwd"},
        {"model": BASE, "training_file": training, "hyperparameters": []},
        {"model": BASE, "training_file": training, "hyperparameters": {"n_epochs": 1e308}},
        {
            "model": BASE,
            "training_file": training,
            "hyperparameters": {"n_epochs": "auto"},
            "seed": -1,
        },
        {"model": BASE, "training_file": training, "method": {"type": "dpo"}},
        {"model": BASE, "training_file": training, "bulkhead": {"lora_rank": None, "x": 1}},
        {"model": "x" * 500, "training_file": training},
    ]
    for body in bodies:
        answer = world.gw.call("POST", "/v1/fine_tuning/jobs", key, body)
        assert 400 <= answer.status < 500, (body, answer.status, answer.body)
    raw: list[Callable[[], Any]] = [
        lambda: world.gw.call("POST", "/v1/fine_tuning/jobs", key, raw=b"not json"),
        lambda: world.gw.call("GET", "/v1/fine_tuning/jobs/%ff", key),
        lambda: world.gw.call("GET", "/v1/fine_tuning/jobs?after=" + "a" * 300, key),
        lambda: world.gw.call("DELETE", "/v1/fine_tuning/jobs/x", key),
    ]
    for call in raw:
        answer = call()
        assert 400 <= answer.status < 500, answer.body


def test_a_tuned_model_is_deleted_by_its_owner_alone(world: World) -> None:
    world.tenant("ft-del")
    world.tenant("ft-del-other")
    tenant_id, client = world.ids["ft-del"], world.client("ft-del")
    job_id = world.job("ft-del", suffix="gone")
    world.runner.succeed(job_id)
    world.until("ft-del", job_id, "succeeded")
    name = f"ft:{BASE}:{tenant_id}:gone:{job_id}"
    assert name in {m.id for m in client.models.list()}
    # Another tenant's model, a model of nobody: the same 404; the model survives.
    other = world.keys["ft-del-other"]
    for target in (name, name[:-1] + "x"):
        refused = world.gw.call("DELETE", f"/v1/models/{target}", other)
        assert refused.status == 404 and refused.body["error"]["code"] == "model_not_found"
    # End users of the owner may call the model, not delete it; a platform model is no one's.
    user = world.gw.key("ft-del", role="end_user")
    assert world.gw.call("DELETE", f"/v1/models/{name}", user).status == 403
    base = world.gw.call("DELETE", f"/v1/models/{BASE}", world.keys["ft-del"])
    assert base.status == 403 and base.body["error"]["code"] == "model_not_deletable"
    assert "platform model" in base.body["error"]["message"]
    assert name in {m.id for m in client.models.list()}
    # The owner deletes it (OpenAI's SDK): gone from the list, a call is a 404, nothing left.
    deleted = client.models.delete(name)
    assert (deleted.id, deleted.object, deleted.deleted) == (name, "model", True)
    assert name not in {m.id for m in client.models.list()}
    chat = {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    called = world.gw.call("POST", "/v1/chat/completions", world.keys["ft-del"], chat)
    assert called.status == 404 and called.body["error"]["code"] == "model_not_found"
    again = world.gw.call("DELETE", f"/v1/models/{name}", world.keys["ft-del"])
    assert again.status == 404
    assert all(d.model.name != name for d in world.gw.app.catalog.snapshot.deployments)
    blobs = world.gw.settings.data_dir / "blobs" / tenant_id / "model"
    assert not blobs.exists() or list(blobs.iterdir()) == []
    with world.gw.app.db.tenant_transaction(tenant_id) as session:
        assert session.query(ModelArtifactFileRow).filter_by(tenant_id=tenant_id).count() == 0
    audited = [e for e in world.gw.audit_events() if e["action"] == "v1:models.delete"]
    done = [e for e in audited if e.get("tenant_id") == tenant_id and e["status"] == 200]
    assert len(done) == 1 and done[0]["model"] == name

"""No input ever yields a 5xx: 10,000 generated requests per `/v1` endpoint, the whole chain.

Each endpoint (chat, completions, embeddings, models (with the DELETE of a
fine-tuned model), file upload, file
list, one file, fine-tuning create, and the fine-tuning list and one job's
retrieve, cancel, events and checkpoints; the vector store routes) gets
`EXAMPLES` requests from `tests.support.fuzz_requests`, `fuzz_finetune` and
`fuzz_vectors` (valid, near-valid and hostile bodies; odd content types,
queries, ids) through the real gateway in process (`InProcessGateway`:
SQLite, guards with the canary on, the upstream answered in process,
fine-tuning jobs queued for a fake runner).  Every answer is
below 500; every error is the OpenAI error object with a message, and a
`param` that names a place in the client's own body (the parent of the
field must be there: `messages[1]` for a one-message request is wrong);
nothing is logged at ERROR (an unhandled error; a stream already begun ends a
failure with a 200 and an error event, which the status alone would miss).

The sign-in routes (`/auth/v1`, which `/openapi.json` does not describe)
get the same treatment, with Argon2id at its least cost, and so does the web
console (`/console`: its sign-in, session, sign-out, pages and files, with
any cookie, origin, fetch site and CSRF token).

Hypothesis runs derandomized (the same examples on every run) and the
examples that ran are counted, so "10,000" is a fact, not a setting.  Most
of the time goes to generating the examples, not to the gateway (about 5 s
of the chat endpoint's 10,000 requests): 37-107 s an endpoint, under ten
minutes the file, on two cores shared with other work.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from bulkhead.store import repo
from bulkhead.testing.fake_runner import FakeRunner, fake_adapter
from tests.support.fuzz_finetune import FT_MODEL, fine_tuning_requests
from tests.support.fuzz_requests import Sent, requests
from tests.support.fuzz_vectors import vector_store_requests
from tests.support.inprocess import Answer, InProcessGateway
from tests.support.openai_bodies import MODEL, OTHER_MODEL

pytestmark = pytest.mark.fuzz
EXAMPLES = 10_000
ENDPOINTS = (
    "chat",
    "completions",
    "embeddings",
    "models",
    "files.upload",
    "files.list",
    "files.one",
    "auth",
    "console",
    "fine_tuning.create",
    "fine_tuning.jobs",
    "vector_stores",
)
FIELDS = {"message", "type", "param", "code"}


class Fuzzed:
    """The gateway under test, its tenant's key, and what was seen."""

    def __init__(
        self, gw: InProcessGateway, key: str, uploader: str, files: list[str], stores: list[str]
    ):
        # Uploads go to a tenant of their own: listing thousands of files is not the point.
        self.gw, self.key, self.uploader, self.files = gw, key, uploader, files
        self.developer = ""  # fine-tuning: a model developer's key of the same tenant
        self.tuning: list[str] = []  # its fine-tune file (first), other files, jobs
        self.stores = stores
        self.models: tuple[str, ...] = ()  # for `DELETE /v1/models/{model}`: see `models`
        self.ran: Counter[str] = Counter()
        self.statuses: dict[str, Counter[int]] = {e: Counter() for e in ENDPOINTS}


class Unhandled(logging.Handler):
    """Collects every error the gateway logs as unhandled (each is a 500, or a broken stream)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    gw = InProcessGateway(
        tmp_path_factory.mktemp("fuzz") / "data",
        # The fuzz makes thousands of jobs (they only queue) and stores: room for them all.
        {
            "BULKHEAD_FINE_TUNING_JOBS": "1",
            "BULKHEAD_TENANT_MAX_TUNED_MODELS": "10000",
            "BULKHEAD_TENANT_MAX_VECTOR_STORES": "100000",
            "BULKHEAD_TENANT_MAX_FINE_TUNING_JOBS": "100000",
            "BULKHEAD_TENANT_MAX_MODEL_VERSIONS": "100000",
            # A store's files are bounded at two, one fewer than the fuzz's files: its
            # attaches and creates meet the bound (409) too.
            "BULKHEAD_VECTOR_STORE_MAX_FILES": "2",
        },
        cheap_passwords=True,
        fine_tuning_runner=FakeRunner(),  # the jobs only queue: the lease loop is not started
    )
    gw.tenant("fz")
    gw.tenant("fz-other")
    gw.tenant("fz-up")
    endpoints = ["chat", "completions", "embeddings"]
    gw.model(
        MODEL, "http://127.0.0.1:9/v1", upstream_model="ok", grant=("fz",), endpoints=endpoints
    )
    gw.model(OTHER_MODEL, "http://127.0.0.1:9/v1", upstream_model="ok", grant=("fz-other",))
    gw.must(
        "PATCH", "/admin/v1/tenants/fz/guard", {"pii": "mask", "injection": "flag", "canary": True}
    )
    unlimited = {"requests_per_minute": None, "tokens_per_minute": None, "concurrency": None}
    with gw.app.db.platform_transaction() as session:
        repo.set_tenant_limits(session, "fz", unlimited)
        repo.set_tenant_limits(session, "fz-up", unlimited)
    gw.app.catalog.reload()
    key = gw.key("fz")
    gw.must("POST", "/admin/v1/tenants/fz/principals", {"name": "fz-person", "roles": ["end_user"]})
    gw.hold("admin:principals.password.set", "fz")
    password = {"password": "correct horse battery"}
    gw.must("PUT", "/admin/v1/tenants/fz/principals/fz-person/password", password)
    files = [upload(gw, key, f"f{i}.jsonl") for i in range(3)]
    body = {"embedding_model": MODEL, "file_ids": files[:2]}  # full: see the fuzz's settings
    made = gw.call("POST", "/v1/vector_stores", key, body)
    assert made.status == 200, made.raw
    fuzzed = Fuzzed(gw, key, gw.key("fz-up"), files, [made.body["id"]])
    fuzzed.developer, fuzzed.tuning = tuning(gw)
    fuzzed.models = models(gw)
    yield fuzzed
    gw.stop()


def tuning(gw: InProcessGateway) -> tuple[str, list[str]]:
    """A developer key of `fz`, a trainable model granted to it, its files and two jobs."""
    gw.must("POST", "/admin/v1/models", {"name": FT_MODEL, "worker": "smollm2-135m"})
    gw.must("POST", f"/admin/v1/models/{FT_MODEL}/grants", {"tenant": "fz"})
    developer = gw.key("fz", role="model_developer")
    chat = b'{"messages": [{"role": "user", "content": "a"}, '
    chat += b'{"role": "assistant", "content": "b"}]}'
    known = [
        upload(gw, developer, "t.jsonl", chat, "fine-tune"),
        upload(gw, developer, "bad.jsonl", b"{not json", "fine-tune"),
        upload(gw, developer, "b.jsonl", chat, "batch"),
        upload(gw, gw.key("fz-other"), "o.jsonl", chat, "fine-tune"),
    ]
    for _ in range(2):
        body = {"model": FT_MODEL, "training_file": known[0]}
        made = gw.call("POST", "/v1/fine_tuning/jobs", developer, body)
        assert made.status == 200, made.body
        known.append(made.body["id"])
    return developer, known


def models(gw: InProcessGateway) -> tuple[str, ...]:
    """Names the DELETE of `/v1/models/<name>` is fuzzed with: a fine-tuned model of `fz` (the
    first DELETE of it deletes it), a platform model granted to `fz`, another tenant's."""
    tenant_id = gw.must("GET", "/admin/v1/tenants/fz")["id"]
    tuned = f"ft:{FT_MODEL}:{tenant_id}:fuzz:ftjob-{'0' * 24}"
    assert gw.app.artifacts is not None
    gw.app.artifacts.import_adapter(tenant_id, tuned, "smollm2-135m", fake_adapter())
    gw.app.catalog.reload()
    return (tuned, FT_MODEL, MODEL, OTHER_MODEL)


def upload(
    gw: InProcessGateway, key: str, name: str, data: bytes = b"{}", purpose: str = "batch"
) -> str:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
        + purpose.encode()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="'
        + name.encode()
        + b'"\r\n\r\n'
        + data
        + b"\r\n--b--\r\n"
    )
    headers = [(b"authorization", f"Bearer {key}".encode())]
    headers.append((b"content-type", b"multipart/form-data; boundary=b"))
    answer = gw.request("POST", "/v1/files", headers=headers, body=body)
    assert answer.status == 200, answer.raw
    file_id: str = answer.json()["id"]
    return file_id


def send(fuzzed: Fuzzed, sent: Sent) -> Answer:
    headers = sent.headers
    if sent.credential:
        key = fuzzed.uploader if sent.method == "POST" and sent.path == "/v1/files" else fuzzed.key
        builds = sent.path.startswith(("/v1/fine_tuning/", "/v1/models/"))
        key = fuzzed.developer if builds else key
        headers = [(b"authorization", f"Bearer {key}".encode()), *headers]
    return fuzzed.gw.request(
        sent.method, sent.path, headers=headers, body=sent.body, query=sent.query
    )


# A param is a path of keys and indices: `messages[0].content[1].text`, `logit_bias.50256`.
_INDEX = re.compile(r"\[(\d+)\]")


def names_a_place(value: Any, param: str) -> bool:
    """Whether `param` is a path into `value` whose parent is there (the field may be missing,
    but an index past a list's end, or a step through a scalar, is not a place)."""
    if not param:
        return True
    index = _INDEX.match(param)
    if index is not None:
        i = int(index.group(1))
        rest = param[index.end() :]
        return isinstance(value, list) and i < len(value) and names_a_place(value[i], rest)
    param = param.removeprefix(".")
    if not isinstance(value, dict):
        return False
    for key in value:
        steps = param == key or (param.startswith(key) and param[len(key)] in ".[")
        if steps and names_a_place(value[key], param[len(key) :]):
            return True
    return not re.search(r"[.\[]", param)  # a missing field of an object that is there


def check(endpoint: str, sent: Sent, answer: Answer) -> None:
    assert answer.status < 500, (answer.status, answer.raw[:500], sent)
    if answer.status < 400:
        return
    body = orjson.loads(answer.raw)
    error = body["error"]
    assert set(error) == FIELDS, (body, sent)
    assert isinstance(error["message"], str) and error["message"], (body, sent)
    assert isinstance(error["type"], str) and error["type"], (body, sent)
    param = error["param"]
    assert param is None or isinstance(param, str), (body, sent)
    if param is None or endpoint not in ("chat", "completions", "embeddings"):
        return
    try:
        meant = orjson.loads(sent.body)
    except orjson.JSONDecodeError:
        meant = None
    assert names_a_place(meant, param), (param, error["message"], sent.body[:500])


def fuzz(fuzzed: Fuzzed, endpoint: str) -> None:
    if endpoint.startswith("fine_tuning."):
        strategy = fine_tuning_requests(endpoint, fuzzed.tuning)
    elif endpoint == "vector_stores":
        strategy = vector_store_requests(MODEL, fuzzed.stores, fuzzed.files)
    else:
        strategy = requests(endpoint, fuzzed.files, fuzzed.models)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(sent: Sent) -> None:
        fuzzed.ran[endpoint] += 1
        answer = send(fuzzed, sent)
        fuzzed.statuses[endpoint][answer.status] += 1
        check(endpoint, sent, answer)

    unhandled = Unhandled()
    logging.getLogger("bulkhead").addHandler(unhandled)
    try:
        run()
    finally:
        logging.getLogger("bulkhead").removeHandler(unhandled)
    assert not unhandled.records, [r.getMessage() for r in unhandled.records[:5]]
    assert fuzzed.ran[endpoint] >= EXAMPLES, fuzzed.ran
    print(endpoint, fuzzed.ran[endpoint], "requests:", dict(fuzzed.statuses[endpoint]))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_no_request_yields_a_5xx(fuzzed: Fuzzed, endpoint: str) -> None:
    fuzz(fuzzed, endpoint)
    statuses = fuzzed.statuses[endpoint]
    reaching = ("chat", "completions", "embeddings", "models", "files.upload")
    reaching += ("fine_tuning.create", "fine_tuning.jobs", "vector_stores")
    if endpoint in reaching:
        # The fuzz reaches the upstream (or the store), not only the door's refusals.
        assert statuses[200] >= EXAMPLES // 20, statuses


# The two bugs of issue 14, pinned -------------------------------------------------------------

CHAT = "/v1/chat/completions"


def test_a_number_for_content_is_a_400_naming_it(fuzzed: Fuzzed) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": 42}]}
    answer = fuzzed.gw.call("POST", CHAT, fuzzed.key, body)
    assert answer.status == 400, answer.raw
    assert answer.body["error"]["param"] == "messages[0].content"


@pytest.mark.parametrize(
    ("message", "extra", "param"),
    [
        ({"role": "user", "content": [{"type": "nope"}]}, {}, "messages[0].content[0].type"),
        ({"role": "wizard", "content": "hi"}, {}, "messages[0].role"),
        ({"role": "tool", "content": "hi"}, {}, "messages[0].tool_call_id"),
        ({"role": "user", "content": "hi"}, {"max_tokens": 10**9}, "max_tokens"),
        ({"role": "user", "content": "hi"}, {"tools": [{"type": 1}]}, "tools[0]"),
    ],
)
def test_a_one_message_request_is_refused_with_its_own_indices(
    fuzzed: Fuzzed, message: dict[str, Any], extra: dict[str, Any], param: str
) -> None:
    """The canary system message the guard puts first must not shift the indices an error names."""
    body = {"model": MODEL, "messages": [message], **extra}
    answer = fuzzed.gw.call("POST", CHAT, fuzzed.key, body)
    assert answer.status == 400, answer.raw
    assert answer.body["error"]["param"] == param


def test_names_a_place() -> None:
    body = {"messages": [{"role": "user"}], "logit_bias": {"a.b": 1}}
    for param in ("messages", "model", "messages[0].content", "logit_bias.a.b", "messages[0]"):
        assert names_a_place(body, param), param
    for param in ("messages[1]", "messages[1].content", "model.x", "messages[0].role.x"):
        assert not names_a_place(body, param), param
    assert not names_a_place([1], "messages")

"""The parts a model call never reaches are made at their first request (`app.lazy`).

A started gateway has not imported the management APIs' route tables
(`admin.api`), the web console, nor uvicorn (the default server is
`web.server`); the first request to each is still authenticated and authorized
exactly as before: refused the same way while nothing is made, the same way once
made, and served when allowed (docs/benchmarks.md, issue 21, session 14).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.app.lazy import Deferred, DeferredApp
from bulkhead.errors import Unavailable
from tests.support.inprocess import Answer, InProcessGateway, asgi_request

ROOT = Path(__file__).resolve().parents[2]
LAZY = (
    "bulkhead.admin.api",
    "bulkhead.admin.enrolment",
    "bulkhead.admin.keys",
    "bulkhead.admin.platform",
    "bulkhead.admin.router",
    "bulkhead.admin.signin",
    "bulkhead.admin.tenant",
    "bulkhead.audit.export",
    "bulkhead.console.endpoints",
    "bulkhead.console.oidc",
    "bulkhead.finetune.runner",  # with `BULKHEAD_FINE_TUNING_JOBS` > 0 only (`app.training`)
    "uvicorn",
)

# Runs in a fresh interpreter: build and start a gateway, list which of LAZY are loaded,
# then send requests in order and list, after each, its status, error code and LAZY's.
_SCRIPT = """
import asyncio, json, sys
from bulkhead.app import build, initialize
from bulkhead.settings import load

LAZY, STEPS, DATA = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
settings = load(data_dir=DATA, port=8080, metrics_port=0, env={"BULKHEAD_START_WORKERS": "0"})
init = initialize(settings, "http://testserver")
keys = {"admin": init.admin_key, "tenant": init.demo_key, "none": None}
app = build(settings)
loop = asyncio.new_event_loop()
loop.run_until_complete(app.startup())
loaded = lambda: [m for m in LAZY if m in sys.modules]
out = [loaded()]

from tests.support.inprocess import asgi_request  # imports uvicorn: not asked after this

LAZY.remove("uvicorn")

for method, path, who, sent in STEPS:
    headers = [(b"authorization", f"Bearer {keys[who]}".encode())] if keys[who] else []
    body = json.dumps(sent).encode() if sent is not None else b""
    if sent is not None:
        headers.append((b"content-type", b"application/json"))
    answer = loop.run_until_complete(asgi_request(app, method, path, headers=headers, body=body))
    try:
        body = json.loads(answer.raw)
    except ValueError:
        body = None
    error = body.get("error", {}).get("code") if isinstance(body, dict) else None
    paths = sorted(body.get("paths", {})) if path == "/openapi.json" else None
    out.append([answer.status, error, loaded(), paths])
loop.run_until_complete(app.shutdown())
print(json.dumps(out))
"""


Step = tuple[str, str, str] | tuple[str, str, str, dict[str, Any]]


def _started(tmp_path: Path, steps: list[Step]) -> list[Any]:
    sent = [(*step, None)[:4] for step in steps]  # method, path, whose key, JSON body
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(LAZY), json.dumps(sent), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_started_gateway_has_not_loaded_the_management_api_nor_the_console(
    tmp_path: Path,
) -> None:
    [loaded, chat] = _started(tmp_path, [("GET", "/v1/models", "tenant")])
    assert loaded == []
    assert chat[:3] == [200, None, []]  # a model API call loads neither


def test_the_first_management_calls_are_authenticated_and_authorized_as_before(
    tmp_path: Path,
) -> None:
    steps = [
        ("GET", "/admin/v1/tenants", "none"),  # no credential: refused in front, nothing made
        ("GET", "/admin/v1/tenants", "tenant"),  # a tenant's key: refused in front too
        ("DELETE", "/admin/v1/tenants/demo", "admin"),  # the router's refusal: no grant
        ("GET", "/admin/v1/tenants", "admin"),
        ("GET", "/tenant/v1/models", "tenant"),  # an end user's key: no tenant:* action
        ("GET", "/admin/v1/no-such-thing", "admin"),
    ]
    [loaded, anonymous, tenant, ungranted, admin, end_user, unknown] = _started(tmp_path, steps)
    assert loaded == []
    assert anonymous[:3] == [401, "invalid_api_key", []]
    assert tenant[:3] == [403, "permission_denied", []]
    assert ungranted[:2] == [403, "privileged_access_required"]
    assert "bulkhead.admin.api" in ungranted[2]  # made by the first call that reached it
    assert admin[:2] == [200, None]
    assert end_user[:2] == [403, "permission_denied"]
    assert unknown[:2] == [404, "not_found"]
    assert "bulkhead.console.endpoints" not in unknown[2]


def test_the_sign_in_endpoints_are_made_at_the_first_sign_in_and_refuse_as_before(
    tmp_path: Path,
) -> None:
    wrong = {"principal": "admin", "password": "not the password"}
    steps: list[Step] = [
        ("POST", "/auth/v1/login", "none", wrong),
        ("POST", "/auth/v1/login", "none", {"principal": "admin", "surprise": 1}),
        ("GET", "/console/login", "none"),
    ]
    [loaded, refused, malformed, page] = _started(tmp_path, steps)
    assert loaded == []
    assert refused[:2] == [401, "invalid_credentials"]
    assert "bulkhead.admin.signin" in refused[2]
    assert "bulkhead.admin.api" not in refused[2]  # the sign-in needs no route table
    assert malformed[0] == 400
    assert page[0] == 200


def test_the_api_document_is_made_with_the_management_api(tmp_path: Path) -> None:
    [loaded, document] = _started(tmp_path, [("GET", "/openapi.json", "admin")])
    assert loaded == []
    assert document[0] == 200
    assert "bulkhead.admin.api" in document[2]
    assert "/admin/v1/tenants" in document[3]
    assert "/tenant/v1/tenant" in document[3]


def test_the_console_is_made_at_its_first_request_and_still_needs_a_session(
    tmp_path: Path,
) -> None:
    steps = [
        ("GET", "/console/keys", "none"),  # no session: refused in front, nothing made
        ("GET", "/console/login", "none"),  # the sign-in page: public
        ("GET", "/console/keys", "none"),
    ]
    [loaded, before, page, after] = _started(tmp_path, steps)
    assert loaded == []
    assert before[:3] == [303, None, []]  # to the sign-in page
    assert page[0] == 200
    assert "bulkhead.console.endpoints" in page[2]
    assert "bulkhead.admin.api" not in page[2]
    assert after[:2] == before[:2]


def test_deferred_makes_once_for_concurrent_first_callers() -> None:
    made: list[int] = []
    gate = threading.Event()

    def make() -> int:
        gate.wait(5)
        made.append(1)
        return len(made)

    deferred = Deferred(make, name="part")
    threads = [threading.Thread(target=deferred.get) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert made == [1]
    assert deferred.get() == 1


def test_a_failure_to_make_is_a_503_and_the_next_request_tries_again() -> None:
    tries: list[int] = []
    served: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        served.append(scope["path"])

    def make() -> Any:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("not yet")
        return app

    lazy = DeferredApp(Deferred(make, name="part"), lambda made: made)

    async def calls() -> None:
        with pytest.raises(Unavailable, match="part could not be started"):
            await lazy({"path": "/first"}, None, None)
        await lazy({"path": "/second"}, None, None)
        await lazy({"path": "/third"}, None, None)

    asyncio.run(calls())
    assert tries == [1, 1]
    assert served == ["/second", "/third"]


def test_concurrent_first_requests_on_the_loop_share_one_making_on_one_thread() -> None:
    threads: list[int] = []

    def make() -> str:
        threads.append(threading.get_ident())
        time.sleep(0.3)
        return "made"

    deferred = Deferred(make, name="part")

    async def first_requests() -> list[str]:
        return await asyncio.gather(*(deferred.ready() for _ in range(16)))

    assert asyncio.run(first_requests()) == ["made"] * 16
    assert len(threads) == 1


def test_a_waiting_request_is_answered_503_once_it_waited_long_enough() -> None:
    release = threading.Event()

    def make() -> str:
        release.wait(10)
        return "made"

    deferred = Deferred(make, name="part", wait_s=0.2)

    async def requests() -> None:
        for _ in range(2):  # the second waits on the same making, not a new thread
            with pytest.raises(Unavailable, match="part is still starting"):
                await deferred.ready()
        release.set()
        assert await deferred.ready() == "made"

    asyncio.run(requests())


def test_callers_waiting_for_a_failed_making_share_its_answer_and_it_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tries: list[int] = []
    started = threading.Event()

    def fail() -> str:
        tries.append(1)
        started.set()
        time.sleep(0.3)
        raise RuntimeError("the cause")

    inner = Deferred(fail, name="inner part")
    outer = Deferred(inner.get, name="outer part")  # as the console needs the sign-in
    answers: list[str] = []

    def call(deferred: Deferred[str]) -> None:
        try:
            deferred.get()
        except Unavailable as exc:
            answers.append(str(exc))

    first = threading.Thread(target=call, args=(outer,))
    first.start()
    started.wait(5)
    waiting = [threading.Thread(target=call, args=(d,)) for d in (inner, outer, inner)]
    for t in waiting:
        t.start()
    for t in [first, *waiting]:
        t.join(5)
    assert tries == [1]  # the waiters got the answer of the attempt they waited for
    assert len(answers) == 4
    assert all("could not be started" in a and "the cause" not in a for a in answers)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "inner part" in errors[0].getMessage()
    assert errors[0].exc_info is not None and "the cause" in str(errors[0].exc_info[1])
    with pytest.raises(Unavailable):
        outer.get()  # a later request tries again
    assert tries == [1, 1]


# The real gateway: the management API and its document ----------------------------------------


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[InProcessGateway]:
    gw = InProcessGateway(tmp_path / "data")
    yield gw
    gw.stop()


def _at_once(gw: InProcessGateway, path: str, n: int) -> list[Answer]:
    headers = [(b"authorization", f"Bearer {gw.admin_key}".encode())]

    async def requests() -> list[Answer]:
        return await asyncio.gather(
            *(asgi_request(gw.app, "GET", path, headers=headers) for _ in range(n))
        )

    return gw.loop.run_until_complete(requests())


def test_a_management_api_that_fails_to_build_is_a_clear_503_logged_once_then_retried(
    gateway: InProcessGateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bulkhead.app import deferred

    real, tries = deferred._management, []

    def flaky(*args: Any) -> Any:
        tries.append(1)
        time.sleep(0.2)  # the other first requests arrive meanwhile
        if len(tries) == 1:
            raise RuntimeError("password=hunter2 in /srv/secret/state")
        return real(*args)

    monkeypatch.setattr(deferred, "_management", flaky)
    answers = _at_once(gateway, "/admin/v1/tenants", 4)
    assert [a.status for a in answers] == [503] * 4
    for answer in answers:
        error = answer.json()["error"]
        assert error["code"] == "service_unavailable", error
        assert "management API" in error["message"], error
        assert b"hunter2" not in answer.raw and b"Traceback" not in answer.raw
    assert tries == [1]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "management API" in errors[0].getMessage()
    assert errors[0].exc_info is not None and "hunter2" in str(errors[0].exc_info[1])
    again = gateway.admin("GET", "/admin/v1/tenants")
    assert again.status == 200, again.body
    assert tries == [1, 1]


def test_concurrent_first_api_document_requests_make_it_once(
    gateway: InProcessGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulkhead.app import deferred

    real, builds, documents = deferred._management, [], []

    def counted(*args: Any) -> Any:
        builds.append(1)
        app, document = real(*args)

        def make_document() -> Any:
            documents.append(1)
            time.sleep(0.2)  # the other first requests arrive meanwhile
            return document()

        return app, make_document

    monkeypatch.setattr(deferred, "_management", counted)
    answers = _at_once(gateway, "/openapi.json", 6)
    assert [a.status for a in answers] == [200] * 6
    assert len({a.raw for a in answers}) == 1
    assert (builds, documents) == ([1], [1])

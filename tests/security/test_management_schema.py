"""schemathesis against `/openapi.json`: every management route, generated calls, the whole chain.

The platform routes (`/admin/v1`) are called with the bootstrap platform
admin's key, the tenant routes (`/tenant/v1`) with a tenant admin's key,
through the real gateway in process (`InProcessGateway`, SQLite).  No call
may answer a 5xx (`not_a_server_error`): that test is never expected to
fail.  Every answer matches the schema the document gives it
(`response_schema_conformance`; errors the `Error` object); a route without
a response model is documented as any object, so for it the check says
little until it has one (issue 14 item 4).  Each route gets `EXAMPLES`
calls per test, some valid by its schema and some not (wrong types, missing
fields, no credential), derandomized.

`/auth/v1` (sign-in, enrolment, MFA) is not in the document; its routes are
fuzzed by `tests/security/test_no_5xx.py` instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from bulkhead.domain import Role
from tests.support.inprocess import InProcessGateway

pytestmark = pytest.mark.fuzz
EXAMPLES = 50  # per route and test; 108 routes


class WithoutLifespan:
    """The gateway's chain alone: schemathesis would otherwise start (and later stop) the
    application's background tasks, which the fixture owns."""

    def __init__(self, gw: InProcessGateway):
        self.chain = gw.app.chain

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("lifespan is run by the test's fixture")
        await self.chain(scope, receive, send)


@dataclass
class Api:
    gw: InProcessGateway
    platform_admin: str
    tenant_admin: str

    def headers(self, path: str) -> dict[str, str]:
        key = self.tenant_admin if path.startswith("/tenant/") else self.platform_admin
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    gw = InProcessGateway(tmp_path_factory.mktemp("schema") / "data")
    gw.tenant("st")
    gw.model("st-model", "http://127.0.0.1:9/v1", upstream_model="ok", grant=("st",))
    tenant_admin = gw.key("st", role=Role.TENANT_ADMIN.value, name="schema")
    yield Api(gw, gw.admin_key, tenant_admin)
    gw.stop()


@pytest.fixture(scope="module")
def operations(api: Api) -> list[Any]:
    doc = schemathesis.openapi.from_asgi(
        "/openapi.json", WithoutLifespan(api.gw), headers=api.headers("/admin/v1")
    )
    found = []
    for result in doc.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is well formed
        found.append(result.ok())
    assert len(found) >= 100, len(found)
    return found


FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def failures(
    api: Api, operations: list[Any], check: Any, seen: Counter[tuple[str, int]]
) -> dict[str, str]:
    """Each operation whose generated calls (valid and not) fail `check`: label -> first failure.

    (schemathesis' own pytest loader cannot take a fixture under this pytest, so the
    operations are driven here, one hypothesis run each.)
    """
    failed: dict[str, str] = {}
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @FUZZ
        @given(cases)
        def run(case: Any) -> None:
            response = case.call(headers=api.headers(case.path))
            seen[case.path.split("/")[1], response.status_code] += 1
            case.validate_response(response, checks=[check])

        try:
            run()
        except Exception as exc:
            failed[operation.label] = str(exc)[:2000]
    return failed


def test_no_management_call_yields_a_5xx(api: Api, operations: list[Any]) -> None:
    seen: Counter[tuple[str, int]] = Counter()
    failed = failures(api, operations, not_a_server_error, seen)
    print(sorted(seen.items()))
    assert not failed, "\n\n".join(f"{label}: {why}" for label, why in failed.items())
    # The credentials work: both surfaces answered calls, not only refused them.
    assert seen["admin", 200] and seen["tenant", 200], seen


def test_every_answer_matches_its_schema(api: Api, operations: list[Any]) -> None:
    failed = failures(api, operations, response_schema_conformance, Counter())
    assert not failed, "\n\n".join(f"{label}: {why}" for label, why in failed.items())

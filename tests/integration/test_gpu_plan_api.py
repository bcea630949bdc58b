"""`POST /admin/v1/gpus/plan`: the CLI's MIG planner behind the platform admin's API.

It answers the planner's own layout, refuses bad input with a 400 naming the field
(never a 5xx), bounds the body before any search, changes nothing, and is the platform
admin's alone: an auditor and every tenant role are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.runtime.gpu import gpu_model, plan
from tests.support.inprocess import InProcessGateway

PLAN = "/admin/v1/gpus/plan"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    made = InProcessGateway(tmp_path_factory.mktemp("plan") / "data")
    made.tenant("plans")
    yield made
    made.stop()


def test_the_answer_is_the_planners_layout(gw: InProcessGateway) -> None:
    profiles = ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]
    body = {"gpu": "h100-80gb", "profiles": profiles, "gpus": 1}
    answer = gw.admin("POST", PLAN, body)
    assert answer.status == 200, answer.body
    assert answer.body == plan(gpu_model("h100-80gb"), profiles).to_json()
    spread = gw.admin("POST", PLAN, {"gpu": "a100-80gb", "profiles": ["7g.80gb"] * 3, "gpus": 3})
    assert spread.status == 200 and len(spread.body["gpus"]) == 3, spread.body


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"gpu": "h100-80gb", "profiles": ["7g.80gb", "7g.80gb"]}, "profiles", "no_mig_layout"),
        ({"gpu": "v100", "profiles": ["1g.10gb"]}, "gpu", None),
        ({"gpu": "h100-80gb", "profiles": ["9g.90gb"]}, "profiles", None),
        ({"gpu": "h100-80gb", "profiles": ["<img src=x>"]}, "profiles.0", None),
        ({"gpu": "h100-80gb", "profiles": []}, "profiles", None),
        ({"gpu": "h100-80gb", "profiles": ["1g.10gb"] * 113, "gpus": 16}, "profiles", None),
        ({"gpu": "h100-80gb", "profiles": ["1g.10gb"], "gpus": 17}, "gpus", None),
        ({"gpu": "h100-80gb", "profiles": ["1g.10gb"], "gpus": 0}, "gpus", None),
        ({"gpu": "x" * 33, "profiles": ["1g.10gb"]}, "gpu", None),
        ({"gpu": "h100-80gb", "profiles": ["1g.10gb"], "apply": True}, "apply", None),
        ({"gpu": "h100-80gb", "profiles": "1g.10gb"}, "profiles", None),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    gw: InProcessGateway, body: dict[str, Any], param: str, code: str | None
) -> None:
    answer = gw.admin("POST", PLAN, body)
    assert answer.status == 400, answer.body
    error = answer.body["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert error["code"] == code, error


def test_the_largest_plan_allowed_finishes_with_an_answer(gw: InProcessGateway) -> None:
    mixed = ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb+me"] * 28
    answer = gw.admin("POST", PLAN, {"gpu": "h100-80gb", "profiles": mixed, "gpus": 16})
    assert answer.status in (200, 400), answer.body


def test_only_a_platform_admin_plans(gw: InProcessGateway, tmp_path: Path) -> None:
    body = {"gpu": "h100-80gb", "profiles": ["1g.10gb"]}
    made = gw.admin("POST", "/admin/v1/principals", {"name": "ivy", "roles": ["platform_auditor"]})
    assert made.status == 201, made.body
    key = gw.admin("POST", "/admin/v1/principals/ivy/keys", {"role": "platform_auditor"})
    assert key.status == 201, key.body
    assert gw.call("POST", PLAN, key.body["secret"], body).status == 403
    assert gw.call("GET", "/admin/v1/gpus", key.body["secret"]).status == 200  # it reads
    for role in ("tenant_admin", "tenant_auditor", "end_user"):
        assert gw.call("POST", PLAN, gw.key("plans", role=role), body).status == 403, role
    assert gw.call("POST", PLAN, None, body).status == 401


def test_openapi_describes_the_plan(gw: InProcessGateway) -> None:
    doc = gw.call("GET", "/openapi.json", gw.admin_key).body
    operation = doc["paths"][PLAN]["post"]
    assert "requestBody" in operation
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok, operation

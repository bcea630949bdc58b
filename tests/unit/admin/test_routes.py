"""The management route tables: declared, registered, described, and what the CLI calls.

No gateway runs here: the tables and the OpenAPI document are built from the
modules, as `build_admin` builds them for a gateway that has every service.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, cast

import pytest

import bulkhead.admin
from bulkhead.admin.api import every_route
from bulkhead.admin.openapi import openapi
from bulkhead.admin.router import Route, Router
from bulkhead.errors import MethodNotAllowed, NotFound, http_error
from bulkhead.policy import ACTIONS
from tests.unit.admin.cli_urls import ANY, cli_requests

ADMIN = Path(bulkhead.admin.__file__).parent
PREFIX = {"admin": "/admin/v1/", "tenant": "/tenant/v1/"}
VERBS = {"get", "post", "put", "patch", "delete"}


def document() -> dict[str, Any]:
    return openapi(every_route(), title="test", version="0")


def test_every_route_action_is_registered_and_on_its_own_surface() -> None:
    for route in every_route():
        assert route.action in ACTIONS, f"{route.method} {route.path}: {route.action}"
        surface = route.action.split(":", 1)[0]
        assert route.path.startswith(PREFIX[surface]), f"{route.action} at {route.path}"
        if route.grant_action is not None:
            assert route.grant_action in ACTIONS, route.grant_action


@pytest.mark.parametrize("surface", ["platform", "tenant"])
def test_a_surface_package_holds_only_its_surfaces_routes(surface: str) -> None:
    prefix = PREFIX["admin" if surface == "platform" else "tenant"]
    for path in sorted((ADMIN / surface).glob("*.py")):
        for call in _route_calls(ast.parse(path.read_text())):
            first = call.args[0]
            assert isinstance(first, ast.Constant) and str(first.value).startswith(prefix), (
                f"{surface}/{path.name}:{call.lineno}"
            )


def test_no_two_routes_answer_the_same_method_and_path() -> None:
    seen = [(r.method, r.path) for r in every_route()]
    assert len(seen) == len(set(seen))


def _route_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "Route"
        and n.func.attr in VERBS
    ]


def test_route_tables_are_declared_with_literal_paths() -> None:
    """Every route is `Route.<verb>("/literal/path", ...)` in a module-level table: no path
    is formatted at run time, and no table is built in a loop or a function."""
    declared = 0
    for path in sorted(ADMIN.rglob("*.py")):
        tree = ast.parse(path.read_text())
        where = path.relative_to(ADMIN)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "Route", f"{where}:{node.lineno}: use Route.<verb>(...)"
        calls = _route_calls(tree)
        for call in calls:
            first = call.args[0] if call.args else None
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                f"{where}:{call.lineno}: the path must be a string literal"
            )
            assert "{{" not in first.value and re.fullmatch(r"[\w/{}.-]+", first.value), first.value
        tables = [
            n
            for n in tree.body
            if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "ROUTES" for t in n.targets)
        ]
        if calls:
            assert len(tables) == 1, f"{where}: one module-level ROUTES table"
            assert isinstance(tables[0].value, ast.Tuple), f"{where}: ROUTES is a literal tuple"
            assert all(c in list(ast.walk(tables[0])) for c in calls), f"{where}: all in ROUTES"
        declared += len(calls)
    assert declared == len(every_route())


def test_every_model_has_its_own_name() -> None:
    """The document names models by class name: two of one name would share one schema."""
    models = {m for r in every_route() for m in (r.body, r.response) if m is not None}
    names = [m.__name__ for m in models]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_every_answer_is_described() -> None:
    """Each route's success answer is a model, a list of models, bytes, or a 204 with no body."""
    doc = document()
    schemas = doc["components"]["schemas"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            answers = {k: v for k, v in op["responses"].items() if k != "default"}
            assert len(answers) == 1, (method, path)
            [(status, answer)] = answers.items()
            if status == "204":
                assert "content" not in answer, (method, path)
                continue
            if "application/octet-stream" in answer["content"]:  # a `binary` route's bytes
                assert answer["content"]["application/octet-stream"]["schema"]["format"] == "binary"
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema != {"type": "object"}, (method, path)
            ref = schema.get("$ref") or schema["properties"]["data"]["items"]["$ref"]
            name = ref.rsplit("/", 1)[1]
            assert name in schemas, (method, path, name)
            assert schemas[name].get("properties") or schemas[name].get("description"), name


def test_the_openapi_functions_stay_small() -> None:
    tree = ast.parse((ADMIN / "openapi.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            assert (node.end_lineno or 0) - node.lineno < 60, node.name


def _router() -> Router:
    # Matching needs neither an authorizer nor services.
    return Router(every_route(), authorizer=cast(Any, None), services=cast(Any, None))


def test_a_known_path_with_another_method_is_405_with_allow() -> None:
    router = _router()
    with pytest.raises(MethodNotAllowed) as caught:
        router.match("DELETE", "/admin/v1/tenants")
    assert caught.value.allow == ("GET", "POST")
    status, headers, body = http_error(caught.value)
    assert status == 405 and (b"allow", b"GET, POST") in headers
    assert b'"code":"method_not_allowed"' in body
    with pytest.raises(MethodNotAllowed) as caught:
        router.match("PUT", "/tenant/v1/keys/key_1/rotate")
    assert caught.value.allow == ("POST",)


def test_an_unknown_path_is_still_404() -> None:
    with pytest.raises(NotFound):
        _router().match("GET", "/admin/v1/nothing-here")


def test_a_route_declares_its_answer() -> None:
    async def handler(call: Any) -> None:
        return None

    with pytest.raises(ValueError, match="response model"):
        Route.get("/admin/v1/x", action="admin:x", handler=handler, summary="x", response=None)
    route = Route.delete(
        "/admin/v1/x", action="admin:x", handler=handler, summary="x", response=None, status=204
    )
    assert route.method == "DELETE" and route.response is None


def _matches(sent: str, template: str) -> bool:
    a, b = sent.strip("/").split("/"), template.strip("/").split("/")
    return len(a) == len(b) and all(
        x in (y, ANY) or (y.startswith("{") and y.endswith("}")) for x, y in zip(a, b)
    )


def test_every_url_the_cli_builds_is_in_the_openapi_document() -> None:
    paths = document()["paths"]
    sent = cli_requests()
    assert len({(s.method, s.path) for s in sent}) > 70  # the extraction still finds them
    missing = [
        f"{s.method} {s.path} ({s.where})"
        for s in sent
        if not any(
            _matches(s.path, template) and s.method.lower() in methods
            for template, methods in paths.items()
        )
    ]
    assert not missing, missing

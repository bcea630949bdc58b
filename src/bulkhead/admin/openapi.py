"""The OpenAPI 3.1 document of the management routes, built from their declarations.

Every route declares the model of its answer (`Route.response`), so every
success answer is described: a model, a list of them (`{"object": "list",
"data": [...]}`), or no content at all for a 204.  Every error answer is the
admin error format (`Error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bulkhead.admin.router import Route

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _request_body(route: Route) -> dict[str, Any] | None:
    if route.raw:
        content = {"application/octet-stream": {"schema": {"type": "string"}}}
    elif route.body is not None:
        content = {"application/json": {"schema": _ref(route.body)}}
    else:
        return None
    return {"required": True, "content": content}


def _success(route: Route) -> dict[str, Any]:
    """The answer of a call that worked: its model, a list of them, or nothing (204)."""
    if route.binary:
        binary = {"schema": {"type": "string", "format": "binary"}}
        return {"description": "OK", "content": {"application/octet-stream": binary}}
    if route.response is None:
        return {"description": "Done; no content"}
    schema: dict[str, Any] = _ref(route.response)
    if route.many:
        schema = {
            "type": "object",
            "required": ["object", "data"],
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": schema},
            },
        }
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.action,
        "summary": route.summary,
        "security": [{"bearer": []}],
    }
    body = _request_body(route)
    if body is not None:
        op["requestBody"] = body
    op["responses"] = {
        str(route.status): _success(route),
        "default": {
            "description": "Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    }
    return op


def _schemas(routes: Sequence[Route]) -> dict[str, Any]:
    models = {m for r in routes for m in (r.body, r.response) if m is not None}
    _, schemas = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    return {**schemas.get("$defs", {}), "Error": _ERROR_SCHEMA}


def openapi(routes: Sequence[Route], *, title: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document of the given routes."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": _schemas(routes),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

"""The one table of the model API (`/v1`): what each endpoint is, for every layer of the chain.

The first layer that looks at a request (`EndpointMiddleware`) matches its
method and path here once and sets `ENDPOINT` in the scope; every later
layer reads that fact (`endpoint_of`) instead of asking "which endpoint is
this?" of the path again.  A `/v1` path that matches nothing sets nothing
and is answered 404 by authorization, after authentication.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bulkhead.domain import Endpoint
from bulkhead.finetune.request import validate_create
from bulkhead.gateway import validate
from bulkhead.vectors import request as vectors
from bulkhead.web.scope import ENDPOINT, ASGIApp, Receive, Scope, Send, set_once


class Body(Enum):
    """What the endpoint reads: nothing, a JSON object (the API body limit), or an upload."""

    NONE = "none"
    JSON = "json"
    UPLOAD = "upload"


class Relay(Enum):
    """What the innermost app does: list models, delete a fine-tuned one, proxy to the
    upstream, the files API, the fine-tuning API or the vector stores API."""

    MODELS = "models"
    MODEL_DELETE = "model_delete"
    UPSTREAM = "upstream"
    FILES = "files"
    FINE_TUNING = "fine_tuning"
    VECTOR_STORES = "vector_stores"


Validator = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class V1Endpoint:
    method: str
    path: str  # a literal path, or one with `{file_id}` / `{job_id}` / `{model}`
    action: str  # the Cedar action (`policy.ACTIONS`)
    relay: Relay
    body: Body = Body.NONE
    model: Endpoint | None = None  # the model capability it needs (resolved from `model`)
    generates: bool = False  # reserves `max_tokens`, output guards, prompt diversity
    guarded: bool = False  # the tenant's input guards scan it
    validator: Validator | None = None  # the body's shape (`gateway.validate`)
    upstream: str | None = None  # the upstream's path

    @property
    def counted(self) -> str | None:
        """What admission counts the prompt as (`limits.prompt_tokens`), if anything."""
        return self.model.value if self.model is not None else None

    @property
    def chat(self) -> bool:
        return self.model is Endpoint.CHAT

    def params(self, path: str) -> dict[str, str]:
        """The values of the path's `{name}` parts (`file_id`, `job_id`, `model`)."""
        found = _pattern(self.path).match(path)
        return found.groupdict() if found is not None else {}


V1: tuple[V1Endpoint, ...] = (
    V1Endpoint(
        method="POST",
        path="/v1/chat/completions",
        action="v1:chat",
        relay=Relay.UPSTREAM,
        body=Body.JSON,
        model=Endpoint.CHAT,
        generates=True,
        guarded=True,
        validator=validate.chat,
        upstream="/chat/completions",
    ),
    V1Endpoint(
        method="POST",
        path="/v1/completions",
        action="v1:completions",
        relay=Relay.UPSTREAM,
        body=Body.JSON,
        model=Endpoint.COMPLETIONS,
        generates=True,
        guarded=True,
        validator=validate.completions,
        upstream="/completions",
    ),
    V1Endpoint(
        method="POST",
        path="/v1/embeddings",
        action="v1:embeddings",
        relay=Relay.UPSTREAM,
        body=Body.JSON,
        model=Endpoint.EMBEDDINGS,
        guarded=True,
        validator=validate.embeddings,
        upstream="/embeddings",
    ),
    V1Endpoint(method="GET", path="/v1/models", action="v1:models.list", relay=Relay.MODELS),
    V1Endpoint(
        method="GET", path="/v1/models/{model}", action="v1:models.list", relay=Relay.MODELS
    ),
    V1Endpoint(
        method="DELETE",
        path="/v1/models/{model}",
        action="v1:models.delete",
        relay=Relay.MODEL_DELETE,
    ),
    V1Endpoint(
        method="POST",
        path="/v1/files",
        action="v1:files.create",
        relay=Relay.FILES,
        body=Body.UPLOAD,
    ),
    V1Endpoint(method="GET", path="/v1/files", action="v1:files.list", relay=Relay.FILES),
    V1Endpoint(method="GET", path="/v1/files/{file_id}", action="v1:files.get", relay=Relay.FILES),
    V1Endpoint(
        method="DELETE", path="/v1/files/{file_id}", action="v1:files.delete", relay=Relay.FILES
    ),
    V1Endpoint(
        method="GET",
        path="/v1/files/{file_id}/content",
        action="v1:files.content",
        relay=Relay.FILES,
    ),
    V1Endpoint(
        method="POST",
        path="/v1/fine_tuning/jobs",
        action="v1:fine_tuning.jobs.create",
        relay=Relay.FINE_TUNING,
        body=Body.JSON,
        validator=validate_create,
    ),
    V1Endpoint(
        method="GET",
        path="/v1/fine_tuning/jobs",
        action="v1:fine_tuning.jobs.list",
        relay=Relay.FINE_TUNING,
    ),
    V1Endpoint(
        method="GET",
        path="/v1/fine_tuning/jobs/{job_id}",
        action="v1:fine_tuning.jobs.get",
        relay=Relay.FINE_TUNING,
    ),
    V1Endpoint(
        method="POST",
        path="/v1/fine_tuning/jobs/{job_id}/cancel",
        action="v1:fine_tuning.jobs.cancel",
        relay=Relay.FINE_TUNING,
    ),
    V1Endpoint(
        method="GET",
        path="/v1/fine_tuning/jobs/{job_id}/events",
        action="v1:fine_tuning.jobs.events.list",
        relay=Relay.FINE_TUNING,
    ),
    V1Endpoint(
        method="GET",
        path="/v1/fine_tuning/jobs/{job_id}/checkpoints",
        action="v1:fine_tuning.jobs.checkpoints.list",
        relay=Relay.FINE_TUNING,
    ),
)

_VS, _VSF = "/v1/vector_stores/{vector_store_id}", "/v1/vector_stores/{vector_store_id}/files"


def _vs(method: str, path: str, action: str, validator: Validator | None = None) -> V1Endpoint:
    body = Body.JSON if validator is not None else Body.NONE
    return V1Endpoint(
        method=method,
        path=path,
        action="v1:vector_stores." + action,
        relay=Relay.VECTOR_STORES,
        body=body,
        validator=validator,
    )


VECTOR_STORES: tuple[V1Endpoint, ...] = (
    _vs("POST", "/v1/vector_stores", "create", vectors.validate_create),
    _vs("GET", "/v1/vector_stores", "list"),
    _vs("GET", _VS, "get"),
    _vs("POST", _VS, "update", vectors.validate_modify),
    _vs("DELETE", _VS, "delete"),
    _vs("POST", _VS + "/search", "search", vectors.validate_search),
    _vs("POST", _VSF, "files.create", vectors.validate_attach),
    _vs("GET", _VSF, "files.list"),
    _vs("GET", _VSF + "/{file_id}", "files.get"),
    _vs("DELETE", _VSF + "/{file_id}", "files.delete"),
)
V1 = V1 + VECTOR_STORES


def _part(found: re.Match[str]) -> str:
    """A path part: one segment, but a model's name may hold a "/" (`store.repo.MODEL_NAME`)."""
    name = found.group(1)
    return f"(?P<{name}>.+)" if name == "model" else f"(?P<{name}>[^/]+)"


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", _part, path) + "$")


_EXACT = {(e.method, e.path): e for e in V1 if "{" not in e.path}
_PATTERNS = [(e, _pattern(e.path)) for e in V1 if "{" in e.path]


def match(method: str, path: str) -> V1Endpoint | None:
    """The endpoint for this method and path, or None."""
    found = _EXACT.get((method, path))
    if found is not None:
        return found
    for endpoint, pattern in _PATTERNS:
        if endpoint.method == method and pattern.match(path):
            return endpoint
    return None


def allowed(path: str) -> tuple[str, ...]:
    """The methods the table takes on `path` (none: an unknown path)."""
    found = {e.method for e in V1 if e.path == path}
    found |= {e.method for e, pattern in _PATTERNS if pattern.match(path)}
    return tuple(sorted(found))


def endpoint_of(scope: Scope) -> V1Endpoint | None:
    """The `/v1` endpoint the request was matched to (None: not the model API, or unknown)."""
    found: V1Endpoint | None = scope.get(ENDPOINT)
    return found


class EndpointMiddleware:
    """Matches a `/v1` request against the table once, for every layer after it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            found = match(scope["method"], scope["path"])
            if found is not None:
                set_once(scope, ENDPOINT, found)
        await self.app(scope, receive, send)

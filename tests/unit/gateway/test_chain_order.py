"""The chain's order, what each layer may assume of the layers before it, and one way to set facts.

Facts go into the scope once (`set_once`), by the layer that learns them, and
the audit record is written through the `Exchange`'s named methods; these
tests read the gateway's source to hold every module to that, and pin the
order in which the layers run, so a layer never depends on a fact that only
a later layer (or one that happens to sit outside it) sets.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bulkhead.gateway
from bulkhead.gateway import chain, endpoints
from bulkhead.policy import ACTIONS
from bulkhead.web import scope as scope_module

GATEWAY = Path(bulkhead.gateway.__file__).parent
SRC = GATEWAY.parent

ORDER = [
    "RequestIdMiddleware",
    "SecurityHeadersMiddleware",
    "ErrorMiddleware",
    "EndpointMiddleware",
    "AuditMiddleware",
    "AuthenticationMiddleware",
    "CsrfMiddleware",
    "TenantContextMiddleware",
    "AnomalyMiddleware",
    "ClientCertMiddleware",
    "BodyMiddleware",
    "AuthorizationMiddleware",
    "ValidationMiddleware",
    "AdmissionMiddleware",
    "GuardInMiddleware",
    "RouteMiddleware",
    "FairShareMiddleware",
    "RetentionMiddleware",
    "GuardOutMiddleware",
]

# Scope keys a reader function stands for.
READERS = {
    "exchange": "EXCHANGE",
    "context": "CONTEXT",
    "credential": "CREDENTIAL",
    "json_body": "JSON",
    "raw_body": "BODY",
    "resolved_model": "MODEL",
    "endpoint_of": "ENDPOINT",
    "job_owner": "CONTEXT",
}
KEYS = ("EXCHANGE", "REQUEST_ID", "ENDPOINT", "CREDENTIAL", "CONTEXT", "BODY", "JSON", "MODEL")
KEYS += ("TICKET", "GUARDED", "OUTGOING", "TARGET", "COOKIE_SESSION")
# Read only where present (`scope.get`), never assumed: they are optional facts.
OPTIONAL = {"OUTGOING", "TICKET", "GUARDED"}


def _layers() -> list[type[Any]]:
    deps = SimpleNamespace(
        **{
            name: None
            for name in chain.GatewayDeps.__dataclass_fields__  # every dependency, unused here
        }
    )
    deps.admission = SimpleNamespace(default_max_tokens=lambda ctx: None, count=lambda e, b: 0)
    return [layer for layer, _ in chain.layers_of(deps, None)]  # type: ignore[arg-type]


def test_the_chain_runs_in_this_order() -> None:
    assert [layer.__name__ for layer in _layers()] == ORDER


def _source(layer: type[Any]) -> str:
    return inspect.getsource(inspect.getmodule(layer))  # type: ignore[arg-type]


def _sets(source: str) -> set[str]:
    return set(re.findall(r"set_once\(\s*scope,\s*(\w+)", source))


def _reads(source: str) -> set[str]:
    keys = {k for k in KEYS if re.search(rf"scope\[{k}\]", source)}  # `.get`: optional
    # The CSRF layer's cookie fact is optional by nature, so it is held to the order too.
    keys |= {k for k in ("COOKIE_SESSION",) if re.search(rf"scope\.get\({k}\)", source)}
    keys |= {key for fn, key in READERS.items() if re.search(rf"\b{fn}\(scope", source)}
    return keys


def test_each_layer_reads_only_facts_an_earlier_layer_set() -> None:
    known: set[str] = set()
    for layer in _layers():
        source = _source(layer)
        missing = _reads(source) - known - _sets(source) - OPTIONAL
        assert not missing, f"{layer.__name__} reads {sorted(missing)} before any layer sets it"
        known |= _sets(source)
    assert {"EXCHANGE", "ENDPOINT", "CONTEXT", "JSON", "MODEL", "TICKET", "TARGET"} <= known
    assert "COOKIE_SESSION" in known


def _gateway_modules() -> list[Path]:
    return sorted(GATEWAY.glob("*.py"))


def test_no_layer_assigns_to_the_scope_but_through_set_once() -> None:
    found = []
    for path in _gateway_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "scope"
                ):
                    found.append(f"{path.name}:{node.lineno}")
    assert found == []


def _exchange(node: ast.Attribute) -> bool:
    """`ex.field` or `exchange(scope).field`."""
    value = node.value
    if isinstance(value, ast.Name):
        return value.id == "ex"
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "exchange"
    )


def test_the_audit_record_is_written_through_its_named_methods() -> None:
    fields = set(scope_module.Exchange.__dataclass_fields__)
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == Path(scope_module.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Assign | ast.AugAssign):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Attribute) and leaf.attr in fields and _exchange(leaf):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno} ex.{leaf.attr}")
    assert found == []


def test_one_table_names_the_model_api() -> None:
    literal = re.compile(
        r"[\"']/v1/(chat/completions|completions|embeddings|models|files|fine_tuning|vector_stores)"
    )
    where = [p.name for p in _gateway_modules() if literal.search(p.read_text())]
    assert where == ["endpoints.py"]
    assert not re.search(r"\bpath\b\s*(==|in)\s", (GATEWAY / "openai_api.py").read_text())


def test_every_endpoint_names_a_registered_action() -> None:
    for endpoint in endpoints.V1:
        assert endpoint.action in ACTIONS
        bare = endpoint.path.replace("{file_id}", "").replace("{job_id}", "")
        bare = bare.replace("{vector_store_id}", "")
        bare = bare.replace("{model}", "")
        assert endpoint.path.startswith("/v1/") and "{" not in bare
        if endpoint.generates or endpoint.guarded:
            assert endpoint.validator is not None and endpoint.model is not None
        # Nothing reaches an upstream, or is parsed as JSON, unvalidated or unscanned.
        if endpoint.body is endpoints.Body.JSON:
            assert endpoint.validator is not None
        if endpoint.relay is endpoints.Relay.UPSTREAM:
            assert endpoint.validator is not None and endpoint.guarded


@pytest.mark.parametrize(
    "method, path, action",
    [
        ("POST", "/v1/chat/completions", "v1:chat"),
        ("GET", "/v1/models", "v1:models.list"),
        ("GET", "/v1/files/file-1", "v1:files.get"),
        ("DELETE", "/v1/files/file-1", "v1:files.delete"),
        ("GET", "/v1/files/file-1/content", "v1:files.content"),
        ("POST", "/v1/files", "v1:files.create"),
        ("POST", "/v1/fine_tuning/jobs", "v1:fine_tuning.jobs.create"),
        ("GET", "/v1/fine_tuning/jobs", "v1:fine_tuning.jobs.list"),
        ("GET", "/v1/fine_tuning/jobs/ftjob-1", "v1:fine_tuning.jobs.get"),
        ("POST", "/v1/fine_tuning/jobs/ftjob-1/cancel", "v1:fine_tuning.jobs.cancel"),
        ("GET", "/v1/fine_tuning/jobs/ftjob-1/events", "v1:fine_tuning.jobs.events.list"),
        (
            "GET",
            "/v1/fine_tuning/jobs/ftjob-1/checkpoints",
            "v1:fine_tuning.jobs.checkpoints.list",
        ),
        ("POST", "/v1/vector_stores", "v1:vector_stores.create"),
        ("GET", "/v1/vector_stores", "v1:vector_stores.list"),
        ("GET", "/v1/vector_stores/vs_1", "v1:vector_stores.get"),
        ("POST", "/v1/vector_stores/vs_1", "v1:vector_stores.update"),
        ("DELETE", "/v1/vector_stores/vs_1", "v1:vector_stores.delete"),
        ("POST", "/v1/vector_stores/vs_1/search", "v1:vector_stores.search"),
        ("POST", "/v1/vector_stores/vs_1/files", "v1:vector_stores.files.create"),
        ("GET", "/v1/vector_stores/vs_1/files", "v1:vector_stores.files.list"),
        ("GET", "/v1/vector_stores/vs_1/files/file-1", "v1:vector_stores.files.get"),
        ("DELETE", "/v1/vector_stores/vs_1/files/file-1", "v1:vector_stores.files.delete"),
    ],
)
def test_the_table_matches(method: str, path: str, action: str) -> None:
    found = endpoints.match(method, path)
    assert found is not None and found.action == action


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/chat/completions"),
        ("POST", "/v1/files/a/b"),
        ("GET", "/v1/files/"),
        ("GET", "/v1/files/a/content/x"),
        ("POST", "/v1/chat/completions/"),
        ("GET", "/v1/fine_tuning/jobs/a/cancel"),
        ("POST", "/v1/fine_tuning/jobs/a"),
        ("GET", "/v1/fine_tuning/jobs/a/events/b"),
        ("DELETE", "/v1/fine_tuning/jobs/a"),
    ],
)
def test_the_table_matches_nothing_else(method: str, path: str) -> None:
    assert endpoints.match(method, path) is None

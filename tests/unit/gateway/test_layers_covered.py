"""Every layer `build_chain` assembles has its own unit tests: a new layer needs some too."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from bulkhead.gateway.chain import Endpoints, GatewayDeps, build_chain
from bulkhead.limits import Unlimited

HERE = Path(__file__).parent
# Each layer and the test modules that drive it on its own, around a fake inner app.
TESTED = {
    "RequestIdMiddleware": ["test_layers_outer.py"],
    "SecurityHeadersMiddleware": ["test_layers_outer.py"],
    "ErrorMiddleware": ["test_layers_outer.py", "test_errors.py"],
    "EndpointMiddleware": ["test_layers_outer.py"],
    "AuditMiddleware": ["test_layers_outer.py"],
    "AuthenticationMiddleware": ["test_layers_identity.py"],
    "CsrfMiddleware": ["test_csrf.py"],
    "TenantContextMiddleware": ["test_layers_identity.py"],
    "AnomalyMiddleware": ["test_layers_identity.py", "test_anomaly.py"],
    "ClientCertMiddleware": ["test_layers_identity.py"],
    "BodyMiddleware": ["test_layers_request.py"],
    "AuthorizationMiddleware": ["test_layers_request.py"],
    "ValidationMiddleware": ["test_validation.py"],
    "AdmissionMiddleware": ["test_layers_request.py"],
    "GuardInMiddleware": ["test_layers_request.py", "test_guard.py"],
    "RouteMiddleware": ["test_layers_call.py"],
    "FairShareMiddleware": ["test_layers_call.py"],
    "RetentionMiddleware": ["test_layers_call.py"],
    "GuardOutMiddleware": ["test_layers_call.py", "test_guard_out.py"],
}


def chain_layers() -> list[str]:
    """The layers of a chain built on placeholder dependencies, outermost first."""
    deps: dict[str, Any] = {f.name: None for f in dataclasses.fields(GatewayDeps)}
    deps |= {"openapi": dict, "max_body_bytes": 1, "max_file_bytes": 1, "max_model_bytes": 1}
    deps["admission"] = Unlimited()
    app: Any = build_chain(GatewayDeps(**deps))
    names = []
    while not isinstance(app, Endpoints):
        names.append(type(app).__name__)
        app = app.app
    return names


def test_every_layer_of_the_chain_has_unit_tests() -> None:
    layers = chain_layers()
    assert len(layers) >= 17
    untested = [name for name in layers if name not in TESTED]
    assert not untested, f"layers without unit tests (add them, then list them here): {untested}"
    for name in layers:
        for module in TESTED[name]:
            assert name in (HERE / module).read_text(), f"{module} does not drive {name}"

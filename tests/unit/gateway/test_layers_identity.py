"""Who is calling: authentication, tenant context, anomaly and client-certificate layers.

Each wraps a fake inner app (`bulkhead.testing.asgi`); the catalog is an
in-memory `World` (tests/support/chain.py).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from bulkhead.domain import ApiKey, Role, SignedIn, TenantStatus
from bulkhead.errors import PermissionDenied, Unauthenticated, Unavailable
from bulkhead.gateway.anomaly import AnomalyMiddleware
from bulkhead.gateway.authenticate import AuthenticationMiddleware
from bulkhead.gateway.client_cert import ClientCertMiddleware
from bulkhead.gateway.tenant_context import TenantContextMiddleware
from bulkhead.testing.asgi import FakeApp, run
from bulkhead.web.cookies import COOKIE, CookieSession
from bulkhead.web.scope import CONTEXT, COOKIE_SESSION, CREDENTIAL, EXCHANGE
from tests.support.chain import OTHER, TENANT, USER, World, caller, scope_at, tenant_with

PUBLIC = frozenset({"/healthz"})


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


def authn(world: World, inner: FakeApp) -> AuthenticationMiddleware:
    return AuthenticationMiddleware(inner, catalog=world, public=PUBLIC)  # type: ignore[arg-type]


# Authentication ------------------------------------------------------------------------------


def test_a_valid_key_is_the_credential() -> None:
    world, inner = World(), FakeApp()
    token = world.key()
    scope = scope_at("GET", "/v1/models", headers=bearer(token))
    run(authn(world, inner), scope)
    found = inner.seen[CREDENTIAL]
    assert isinstance(found, ApiKey) and found.principal_id == USER.id
    assert scope[EXCHANGE].credential_id == found.id


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="none"),
        pytest.param([(b"authorization", b"Basic dXNlcjpwYXNz")], id="basic-scheme"),
        pytest.param(bearer("sk-not-ours"), id="foreign-token"),
        pytest.param(bearer("bk_aaaaaaaaaaaa_" + "A" * 43), id="unknown-key"),
        pytest.param(bearer("bk_short"), id="malformed-key"),
    ],
)
def test_no_usable_credential_is_refused_before_the_inner_app(
    headers: list[tuple[bytes, bytes]],
) -> None:
    inner = FakeApp()
    with pytest.raises(Unauthenticated):
        run(authn(World(), inner), scope_at("GET", "/v1/models", headers=headers))
    assert not inner.called


SESSION = "bks_" + "a" * 32 + "_" + "b" * 43


class Sessions:
    """A session verifier that knows one token (the store's is tested in tests/unit/store)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def verify(self, token: str) -> SignedIn:
        self.asked.append(token)
        if token != SESSION:
            raise Unauthenticated("Incorrect session token provided.")
        expires = datetime.now(UTC) + timedelta(hours=1)
        return SignedIn("s1", "session", TENANT.id, USER.id, Role.TENANT_ADMIN, True, expires)


def cookie(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"theme=dark; {COOKIE}={token}".encode())]


def with_sessions(world: World, inner: FakeApp, sessions: Sessions) -> AuthenticationMiddleware:
    return AuthenticationMiddleware(
        inner,
        catalog=world,  # type: ignore[arg-type]
        public=PUBLIC,
        sessions=sessions,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("path", ["/console", "/console/keys", "/tenant/v1/keys", "/admin/v1/x"])
def test_the_console_cookie_is_a_session_on_the_console_and_management_apis(path: str) -> None:
    world, inner, sessions = World(), FakeApp(), Sessions()
    run(with_sessions(world, inner, sessions), scope_at("GET", path, headers=cookie(SESSION)))
    assert isinstance(inner.seen[CREDENTIAL], SignedIn) and sessions.asked == [SESSION]
    assert inner.seen[COOKIE_SESSION] == CookieSession(SESSION)


@pytest.mark.parametrize(
    "path", ["/v1/models", "/v1/chat/completions", "/openapi.json", "/consoles"]
)
def test_the_cookie_never_authenticates_anything_else(path: str) -> None:
    world, inner, sessions = World(), FakeApp(), Sessions()
    with pytest.raises(Unauthenticated, match="didn't provide"):
        run(with_sessions(world, inner, sessions), scope_at("GET", path, headers=cookie(SESSION)))
    assert sessions.asked == [] and not inner.called


def test_a_bearer_header_wins_over_the_cookie() -> None:
    world, inner, sessions = World(), FakeApp(), Sessions()
    headers = bearer(world.key()) + cookie(SESSION)
    run(with_sessions(world, inner, sessions), scope_at("POST", "/tenant/v1/keys", headers=headers))
    assert isinstance(inner.seen[CREDENTIAL], ApiKey)
    assert COOKIE_SESSION not in inner.seen and sessions.asked == []


@pytest.mark.parametrize("token", ["bk_aaaaaaaaaaaa_" + "A" * 43, "junk", "bks_x"])
def test_a_cookie_holding_anything_but_a_live_session_is_refused(token: str) -> None:
    world, inner, sessions = World(), FakeApp(), Sessions()
    with pytest.raises(Unauthenticated):
        run(
            with_sessions(world, inner, sessions),
            scope_at("GET", "/console", headers=cookie(token)),
        )
    assert not inner.called


def test_a_stale_catalog_refuses_every_credential_but_not_the_public_paths() -> None:
    world, inner = World(unconfirmed=True), FakeApp()
    token = world.key()
    with pytest.raises(Unavailable) as refused:
        run(authn(world, inner), scope_at("GET", "/v1/models", headers=bearer(token)))
    assert refused.value.code == "catalog_stale"
    assert not inner.called
    run(authn(world, inner), scope_at("GET", "/healthz"))
    assert inner.called


def test_a_key_with_the_wrong_secret_is_refused() -> None:
    world = World()
    token = world.key()
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthenticated):
        run(authn(world, FakeApp()), scope_at("GET", "/v1/models", headers=bearer(forged)))


@pytest.mark.parametrize(
    "state",
    [
        {"revoked_at": datetime.now(UTC)},
        {"expires_at": datetime.now(UTC) - timedelta(seconds=1)},
    ],
)
def test_a_revoked_or_expired_key_is_refused(state: dict[str, Any]) -> None:
    world = World()
    token = world.key(**state)
    with pytest.raises(Unauthenticated, match="revoked or expired"):
        run(authn(world, FakeApp()), scope_at("GET", "/v1/models", headers=bearer(token)))


def test_the_public_paths_pass_without_a_credential() -> None:
    inner = FakeApp()
    scope = scope_at("GET", "/healthz")
    run(authn(World(), inner), scope)
    assert inner.called and CREDENTIAL not in scope


# Tenant context ------------------------------------------------------------------------------


def context_of(world: World, token: str, inner: FakeApp | None = None) -> FakeApp:
    inner = inner or FakeApp()
    app = authn(world, TenantContextMiddleware(inner, catalog=world, public=PUBLIC))  # type: ignore[arg-type]
    # A body naming another tenant changes nothing: the context comes from the credential.
    headers = [*bearer(token), (b"x-tenant-id", OTHER.id.encode())]
    run(app, scope_at("GET", "/v1/models", headers=headers, body={"tenant_id": OTHER.id}))
    return inner


def test_the_context_is_the_keys_tenant_and_principal_only() -> None:
    world = World()
    ctx = context_of(world, world.key()).seen[CONTEXT]
    assert ctx.tenant == TENANT and ctx.principal == USER and ctx.role is Role.END_USER


def test_a_suspended_tenant_is_refused() -> None:
    world = World()
    world.tenants[TENANT.id] = dataclasses.replace(TENANT, status=TenantStatus.SUSPENDED)
    inner = FakeApp()
    with pytest.raises(PermissionDenied, match="suspended"):
        context_of(world, world.key(), inner)
    assert not inner.called


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"disabled": True}, id="disabled"),
        pytest.param({"roles": frozenset({Role.TENANT_AUDITOR})}, id="role-withdrawn"),
        pytest.param({"tenant_id": OTHER.id}, id="moved-tenant"),
    ],
)
def test_a_principal_that_no_longer_fits_its_key_is_refused(change: dict[str, Any]) -> None:
    world = World()
    token = world.key()
    world.principals[USER.id] = dataclasses.replace(USER, **change)
    with pytest.raises(Unauthenticated):
        context_of(world, token)


def test_a_key_of_a_deleted_tenant_is_refused() -> None:
    world = World()
    token = world.key()
    del world.tenants[TENANT.id]
    with pytest.raises(Unauthenticated):
        context_of(world, token)


# Anomaly (its detector's cases are in test_anomaly.py) ---------------------------------------


def test_anomaly_without_a_detector_passes_through() -> None:
    inner = FakeApp()
    sent = run(AnomalyMiddleware(inner, detector=None), scope_at(ctx=caller()))
    assert inner.called and sent.status == 200


def test_anomaly_checks_model_calls_and_leaves_management_open() -> None:
    checked: list[str] = []
    detector = SimpleNamespace(
        check=lambda ctx: checked.append(ctx.credential_id),
        observe=lambda ctx, **facts: checked.append(f"observed {facts['status']}"),
    )
    layer = AnomalyMiddleware(FakeApp(status=404), detector=detector)  # type: ignore[arg-type]
    run(layer, scope_at(ctx=caller()))
    run(layer, scope_at("GET", "/tenant/v1/keys", ctx=caller()))
    assert checked == ["key_1", "observed 404", "observed 404"]


# Client certificate --------------------------------------------------------------------------


def test_a_tenant_requiring_client_certs_refuses_a_call_without_one() -> None:
    inner = FakeApp()
    scope = scope_at(ctx=caller(tenant_with(require_client_cert=True)))
    with pytest.raises(PermissionDenied) as refused:
        run(ClientCertMiddleware(inner, ca=None), scope)
    assert not inner.called
    assert refused.value.detail is not None and refused.value.detail.startswith("client cert")


@pytest.mark.parametrize(
    "ctx", [pytest.param(caller(), id="not-required"), pytest.param(None, id="no-context")]
)
def test_client_cert_passes_callers_it_does_not_concern(ctx: Any) -> None:
    inner = FakeApp()
    run(ClientCertMiddleware(inner, ca=None), scope_at(ctx=ctx))
    assert inner.called

"""Tenant- and IdP-controlled input that reaches policy: Cedar text, policy ids, claims, mappings.

Issue 12, items 3, 4, 7, 18 (its IdP half) and 19, and the two suspicions it settles: OIDC
roles that ignore the principal's own, and a claim mapping onto `grants`.  Each test attacks
as a tenant admin (or its IdP) would.  The parses that overflowed the native parser's stack
run in a subprocess, so that on a build that still crashes the test fails with the signal
instead of taking pytest down with it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import cedarpy
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bulkhead.domain import (
    ClaimMapping,
    IdpConfig,
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.errors import InvalidRequest, PermissionDenied
from bulkhead.identity import map_claims
from bulkhead.policy import CedarAuthorizer, Environment, Resource, compile_tenant_policies
from bulkhead.policy import load_schema as cedar_schema
from tests.support.gateway import LOOPBACK_IDP, GatewayThread, UpstreamThread
from tests.unit.identity.test_oidc import JwksServer

# Its IdPs serve their JWKS on 127.0.0.1: the operator allows it (`tests/conftest.py`).
GATEWAY_ENV = LOOPBACK_IDP

ROOT = Path(__file__).resolve().parents[2]
HEAD = "forbid (principal, action, resource) when { "


def _records(levels: int) -> str:
    body = "1"
    for _ in range(levels):
        body = "{a: " + body + "}"
    return HEAD + body + " == 1 };"


# Shapes that overflowed cedarpy's parser on the default 8 MiB stack, each inside 64 KiB.
HOSTILE = {
    "parentheses-800": HEAD + "(" * 800 + "true" + ")" * 800 + " };",
    "sets-800": HEAD + "[" * 800 + "1" + "]" * 800 + ".isEmpty() };",
    "records-800": _records(800),
    "operator-chain-30000": HEAD + "+".join(["1"] * 30000) + " == 1 };",
}

COMPILE = """
import json, sys
from bulkhead.errors import InvalidRequest
from bulkhead.policy import compile_tenant_policies, load_schema
text = sys.stdin.read()
try:
    compile_tenant_policies("ten_hostile", text, load_schema())
    print(json.dumps({"refused": False}))
except InvalidRequest as exc:
    print(json.dumps({"refused": True, "message": exc.message, "param": exc.param}))
"""


def python(code: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def survived(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, (
        f"the process died (exit {result.returncode}; a negative number is the signal): "
        f"{result.stderr[-2000:]}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# Item 3: bounded input before the native parser ------------------------------------------------


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_a_hostile_policy_is_refused_before_the_native_parser(shape: str) -> None:
    assert len(HOSTILE[shape].encode()) <= 64 * 1024
    out = survived(python(COMPILE, HOSTILE[shape]))
    assert out["refused"], out
    assert out["param"] == "policies"
    assert "at most" in out["message"], out["message"]


GATEWAY = """
import json, sys, tempfile
from pathlib import Path
from tests.support.gateway import GatewayThread
text = sys.stdin.read()
with tempfile.TemporaryDirectory() as tmp:
    gw = GatewayThread(Path(tmp) / "data", None).start()
    gw.tenant("hostile")
    gw.tenant("bystander")
    admin = gw.key("hostile", role="tenant_admin")
    other = gw.key("bystander", role="tenant_admin")
    put = gw.call("PUT", "/tenant/v1/policies", admin, {"policies": text})
    health = gw.call("GET", "/healthz", None)
    own = gw.call("GET", "/tenant/v1/policies", admin)
    theirs = gw.call("GET", "/tenant/v1/tenant", other)
    print(json.dumps({
        "put": put.status, "error": (put.body or {}).get("error"), "health": health.status,
        "own": own.status, "version": (own.body or {}).get("version"), "theirs": theirs.status,
    }))
    gw.stop()
"""


def test_the_gateway_refuses_the_1_7_kb_policy_and_keeps_answering() -> None:
    out = survived(python(GATEWAY, HOSTILE["parentheses-800"], timeout=300))
    assert out["put"] == 400, out
    assert out["error"]["param"] == "policies" and "at most" in out["error"]["message"]
    assert (out["health"], out["own"], out["theirs"]) == (200, 200, 200)
    assert out["version"] == 0  # Nothing was stored.


def test_policy_text_is_never_parsed_on_the_event_loop(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: list[str] = []

    def watched(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop.append(name)
            except RuntimeError:
                pass
            return real(*args, **kwargs)

        return call

    class PolicySet:
        from_str = staticmethod(watched("PolicySet.from_str", cedarpy.PolicySet.from_str))
        from_json_str = staticmethod(
            watched("PolicySet.from_json_str", cedarpy.PolicySet.from_json_str)
        )

    for name in ("policies_to_json_str", "validate_policies", "format_policies"):
        monkeypatch.setattr(cedarpy, name, watched(name, getattr(cedarpy, name)))
    monkeypatch.setattr(cedarpy, "PolicySet", PolicySet)

    gateway.tenant(unique)
    gateway.model(f"{unique}-m", upstream.url, grant=(unique,), upstream_model="fake")
    admin, user = gateway.key(unique, role="tenant_admin"), gateway.key(unique)
    text = '@id("no-embeddings")\nforbid (principal, action == Action::"v1:embeddings", resource);'
    assert gateway.call("PUT", "/tenant/v1/policies", admin, {"policies": text}).status == 200
    assert gateway.call("GET", "/tenant/v1/policies", admin).status == 200
    assert gateway.must("GET", f"/admin/v1/tenants/{unique}/policies")["policies"] == text
    body = {"model": f"{unique}-m", "messages": [{"role": "user", "content": "x"}]}
    assert gateway.call("POST", "/v1/chat/completions", user, body).status == 200
    gateway.must(
        "PUT", f"/admin/v1/tenants/{unique}/attributes", {"allowed_networks": ["0.0.0.0/0", "::/0"]}
    )
    assert gateway.call("GET", "/v1/models", user).status == 200
    assert on_loop == []


class Source:
    def __init__(self, texts: Mapping[str, str]):
        self.texts = dict(texts)

    def __call__(self) -> tuple[int, Mapping[str, str]]:
        return 1, self.texts


def tenant(tid: str = "ten_1", **attributes: Any) -> Tenant:
    return Tenant(
        id=tid, name=tid, tier=Tier.SHARED, status=TenantStatus.ACTIVE, attributes=attributes
    )


def context(
    role: Role = Role.END_USER, owner: Tenant | None = None, **attributes: Any
) -> TenantContext:
    owner = owner if owner is not None else tenant()
    principal = Principal(
        id="prn_1",
        tenant_id=owner.id,
        name="someone",
        kind=PrincipalKind.USER,
        roles=frozenset({role}),
    )
    return TenantContext(
        tenant=owner, principal=principal, role=role, credential_id="k1", attributes=attributes
    )


def decision(authorizer: CedarAuthorizer, ctx: TenantContext, action: str, **kw: Any) -> str:
    """The id of the denying policy, or "allow"; any other exception fails the test."""
    try:
        authorizer.authorize(ctx, action, **kw)
    except PermissionDenied as exc:
        return str(exc.policy)
    return "allow"


@pytest.mark.parametrize(
    "text",
    [
        HEAD + " || ".join(["context.hour == 99"] * 100) + " };",
        HEAD + "[" * 60 + "1" + "]" * 60 + ".isEmpty() };",
    ],
    ids=["or-chain-100", "sets-60"],
)
def test_a_policy_the_gateway_accepts_is_one_it_can_load(text: str) -> None:
    """Accepted text must never turn into an error on every later request of the tenant."""
    try:
        compile_tenant_policies("ten_1", text, cedar_schema())
    except InvalidRequest as exc:
        assert exc.param == "policies"  # A clear 400 when it is written...
        return
    authorizer = CedarAuthorizer(Source({"ten_1": text}))  # ...or it works when it is read.
    assert decision(authorizer, context(), "v1:chat") in {"allow", "tenant.ten_1.policy0"}


def test_a_tenant_with_the_most_allowed_networks_still_gets_answers() -> None:
    # The platform API accepts 64 networks; each used to add a level to one `||` chain.
    networks = [f"10.{i}.0.0/16" for i in range(64)]
    authorizer = CedarAuthorizer()
    ctx = context(owner=tenant(allowed_networks=networks))
    assert decision(authorizer, ctx, "v1:chat", env=Environment(client_ip="10.63.1.1")) == "allow"
    outside = decision(authorizer, ctx, "v1:chat", env=Environment(client_ip="10.64.1.1"))
    assert outside.endswith(".networks")


# Item 4: a tenant policy id can never replace a generated or platform policy -------------------


def platform_ids() -> set[str]:
    from importlib import resources

    text = resources.files("bulkhead.policy").joinpath("platform.cedar").read_text()
    est = orjson.loads(cedarpy.policies_to_json_str(text))
    return {p["annotations"]["id"] for p in est["staticPolicies"].values()}


PLATFORM_IDS = sorted(platform_ids())
NETWORKS = ["10.0.0.0/8"]
INSIDE, OUTSIDE = Environment(client_ip="10.1.2.3"), Environment(client_ip="8.8.8.8")


def test_a_tenant_policy_named_networks_does_not_lift_allowed_networks() -> None:
    lifted = '@id("networks")\nforbid (principal, action, resource) when { false };'
    authorizer = CedarAuthorizer(Source({"ten_1": lifted}))
    ctx = context(owner=tenant(allowed_networks=NETWORKS))
    assert decision(authorizer, ctx, "v1:chat", env=INSIDE) == "allow"
    denied = decision(authorizer, ctx, "v1:chat", env=OUTSIDE)
    assert denied.endswith(".networks") and not denied.startswith("tenant.")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True))
@example(name="networks")
@example(name="invalid")
@example(name="ten_1.networks")
@example(name="..networks")
@example(name="policy0")
@example(name="clearance")
@example(name="tenant-isolation")
def test_no_tenant_policy_id_overwrites_a_generated_or_platform_policy(name: str) -> None:
    text = f'@id("{name}")\nforbid (principal, action, resource) when {{ false }};'
    compiled = compile_tenant_policies("ten_1", text, cedar_schema())
    assert not set(compiled) & set(PLATFORM_IDS)
    authorizer = CedarAuthorizer(Source({"ten_1": text}))
    ctx = context(owner=tenant(allowed_networks=NETWORKS))
    assert decision(authorizer, ctx, "v1:chat", env=INSIDE) == "allow"
    assert decision(authorizer, ctx, "v1:chat", env=OUTSIDE).startswith("platform.")
    secret = Resource(tenant_id=None, kind="model", classification=3)
    assert decision(authorizer, ctx, "v1:chat", resource=secret, env=INSIDE) == (
        "platform.clearance"
    )


def test_two_tenant_policies_with_one_id_are_refused() -> None:
    twice = (
        '@id("a")\nforbid (principal, action == Action::"v1:chat", resource);\n'
        '@id("a")\nforbid (principal, action == Action::"v1:embeddings", resource);'
    )
    with pytest.raises(InvalidRequest, match="more than once"):
        compile_tenant_policies("ten_1", twice, cedar_schema())


# Grants and other reserved attributes ----------------------------------------------------------


def test_grants_in_a_tenant_principals_attributes_open_no_other_tenant() -> None:
    # A claim mapping used to be able to put `grants` into the context of a tenant principal.
    theirs = Resource(tenant_id="ten_2", kind="model")
    assert decision(CedarAuthorizer(), context(grants=["ten_2"]), "v1:chat", resource=theirs) == (
        "platform.tenant-isolation"
    )


def mapped(attributes: Mapping[str, str], **claims: Any) -> Mapping[str, Any]:
    mapping = ClaimMapping(attributes=attributes)
    idp = IdpConfig("ten_a", "https://idp.test/a", "a", "https://idp.test/jwks", mapping=mapping)
    return map_claims(idp, {"sub": "erin", "roles": ["end_user"], **claims}).attributes


def test_a_stored_mapping_onto_a_reserved_attribute_is_ignored() -> None:
    got = mapped({"grants": "g", "tenant": "t", "department": "d"}, g=["ten_2"], t="x", d="r")
    assert got == {"department": "r"}


def test_every_attribute_policy_reads_of_the_caller_is_reserved_but_clearance() -> None:
    """A new principal or context attribute in the schema is reserved unless decided otherwise."""
    import re

    from bulkhead.domain import RESERVED_ATTRIBUTES
    from bulkhead.policy import schema_text

    text = schema_text()
    blocks = re.findall(r"(?:entity Principal[^{]*|type Env\s*=\s*)\{([^}]*)\}", text)
    assert len(blocks) == 2
    names = {n for block in blocks for n in re.findall(r'"(\w+)"\s*:', block)}
    assert {"tenant", "ip", "grants", "clearance"} <= names
    assert names - {"clearance"} <= RESERVED_ATTRIBUTES


@pytest.mark.parametrize(
    "value",
    [
        "x" * 100_000,
        ["x"] * 10_000,
        [[["deep"]]],
        {"a": 1},
        [1, {"b": 2}],
    ],
    ids=["long-string", "long-list", "nested-list", "object", "mixed-list"],
)
def test_claim_values_that_reach_the_context_are_bounded(value: Any) -> None:
    assert mapped({"department": "d"}, d=value) == {}


# Item 7: a claim may lower clearance, never raise it -------------------------------------------


def test_an_idp_claim_alone_does_not_raise_clearance() -> None:
    from bulkhead.gateway.tenant_context import _clearance

    assert _clearance(None, "restricted") in {None, "internal"}
    assert _clearance(None, "public") == "public"
    assert _clearance("confidential", "restricted") == "confidential"
    assert _clearance("restricted", "internal") == "internal"


# Through the gateway: OIDC tokens from a tenant's own IdP -------------------------------------


@pytest.fixture(scope="module")
def idp_keys() -> Iterator[tuple[JwksServer, rsa.RSAPrivateKey, rsa.RSAPrivateKey]]:
    server = JwksServer()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server.publish("k1", key.public_key())
    yield server, key, stranger
    server.close()


def token(key: Any, issuer: str, audience: str, kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": issuer, "aud": audience, "exp": now + 300, "iat": now, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def register_idp(gateway: GatewayThread, name: str, jwks: str, claims: Any = None) -> str:
    issuer = f"https://idp.test/{name}"
    body = {"issuer": issuer, "audience": name, "jwks_url": jwks, "claims": claims or {}}
    gateway.must("PUT", f"/admin/v1/tenants/{name}/idp", body)
    return issuer


def test_a_claim_mapping_onto_grants_is_refused(
    gateway: GatewayThread, unique: str, idp_keys: Any
) -> None:
    gateway.tenant(unique)
    for reserved in ("grants", "tenant", "regions", "ip"):
        body = {
            "issuer": f"https://idp.test/{unique}",
            "audience": unique,
            "jwks_url": idp_keys[0].url,
            "claims": {"attributes": {reserved: "groups"}},
        }
        refused = gateway.admin("PUT", f"/admin/v1/tenants/{unique}/idp", body)
        assert refused.status == 400, (reserved, refused.body)
        assert refused.body["error"]["param"] == "claims"


def test_an_idp_token_acts_only_in_roles_the_principal_holds(
    gateway: GatewayThread, unique: str, idp_keys: Any
) -> None:
    server, key, _ = idp_keys
    gateway.tenant(unique)
    issuer = register_idp(gateway, unique, server.url)
    gateway.must(
        "POST", f"/admin/v1/tenants/{unique}/principals", {"name": "erin", "roles": ["end_user"]}
    )
    as_user = token(key, issuer, unique, sub="erin", roles=["end_user"])
    assert gateway.call("GET", "/v1/models", as_user).status == 200
    # The tenant's IdP says "tenant_admin"; the platform provisioned an end user.
    raised = token(key, issuer, unique, sub="erin", roles=["tenant_admin"], amr=["mfa"])
    refused = gateway.call("GET", "/tenant/v1/keys", raised)
    assert refused.status == 401, refused.body
    both = token(key, issuer, unique, sub="erin", roles=["tenant_admin", "end_user"], amr=["mfa"])
    assert gateway.call("GET", "/tenant/v1/keys", both).status == 403  # Acts as the end user.


def test_an_idp_clearance_claim_cannot_raise_the_platforms(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str, idp_keys: Any
) -> None:
    server, key, _ = idp_keys
    gateway.tenant(unique)
    issuer = register_idp(gateway, unique, server.url, {"attributes": {"clearance": "level"}})
    gateway.must(
        "POST", f"/admin/v1/tenants/{unique}/principals", {"name": "erin", "roles": ["end_user"]}
    )
    gateway.model(f"{unique}-m", upstream.url, grant=(unique,), upstream_model="fake")
    gateway.must("PUT", f"/admin/v1/models/{unique}-m/attributes", {"classification": "restricted"})
    body = {"model": f"{unique}-m", "messages": [{"role": "user", "content": "x"}]}
    raised = token(key, issuer, unique, sub="erin", roles=["end_user"], level="restricted")
    refused = gateway.call("POST", "/v1/chat/completions", raised, body)
    assert refused.status == 403, refused.body
    # Set by the platform, the clearance holds; the claim may still lower it.
    path = f"/admin/v1/tenants/{unique}/principals/erin/attributes"
    gateway.must("PUT", path, {"clearance": "restricted"})
    assert gateway.call("POST", "/v1/chat/completions", raised, body).status == 200
    lowered = token(key, issuer, unique, sub="erin", roles=["end_user"], level="internal")
    assert gateway.call("POST", "/v1/chat/completions", lowered, body).status == 403


def test_unknown_issuer_key_signature_and_algorithm_get_one_answer(
    gateway: GatewayThread, unique: str, idp_keys: Any
) -> None:
    server, key, stranger = idp_keys
    gateway.tenant(unique)
    issuer = register_idp(gateway, unique, server.url)
    claims = {"sub": "erin", "roles": ["end_user"]}
    hs = jwt.encode(
        {"iss": issuer, "aud": unique, "exp": int(time.time()) + 300, **claims},
        "a-shared-secret-of-32-bytes-long!",
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    tokens = {
        "unknown issuer": token(key, f"https://idp.test/nobody-{unique}", unique, **claims),
        "unknown key": token(key, issuer, unique, kid="k-unknown", **claims),
        "bad signature": token(stranger, issuer, unique, **claims),
        "wrong algorithm": hs,
    }
    answers = {
        what: (r.status, r.body)
        for what, t in tokens.items()
        for r in [gateway.call("GET", "/v1/models", t)]
    }
    assert {status for status, _ in answers.values()} == {401}
    assert len({json.dumps(body, sort_keys=True) for _, body in answers.values()}) == 1, answers


# Item 19: no lock-out, real reasons, a platform repair route -----------------------------------

FORBID_ALL = "forbid (principal, action, resource);"
NO_CHAT = '@id("no-chat")\nforbid (principal, action == Action::"v1:chat", resource);'


def test_a_tenant_admin_cannot_lock_the_tenant_out_of_its_own_policies(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    admin, user = gateway.key(unique, role="tenant_admin"), gateway.key(unique)
    assert gateway.call("PUT", "/tenant/v1/policies", admin, {"policies": FORBID_ALL}).status == 200
    keys = gateway.call("GET", "/tenant/v1/keys", admin)
    assert keys.status == 403  # The forbid holds everywhere else...
    assert gateway.call("GET", "/tenant/v1/policies", admin).status == 200  # ...but here.
    assert gateway.call("PUT", "/tenant/v1/policies", user, {"policies": ""}).status == 403
    assert gateway.call("PUT", "/tenant/v1/policies", admin, {"policies": ""}).status == 200
    assert gateway.call("GET", "/tenant/v1/keys", admin).status == 200


def test_refusals_name_the_real_reason(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-m", upstream.url, grant=(unique,), upstream_model="fake")
    admin, user = gateway.key(unique, role="tenant_admin"), gateway.key(unique)
    gateway.call("PUT", "/tenant/v1/policies", admin, {"policies": NO_CHAT})
    body = {"model": f"{unique}-m", "messages": [{"role": "user", "content": "x"}]}
    by_policy = gateway.call("POST", "/v1/chat/completions", user, body)
    assert by_policy.status == 403
    message = by_policy.body["error"]["message"]
    assert "no-chat" in message and "may not perform" not in message, message

    path = f"/admin/v1/tenants/{unique}/attributes"
    gateway.must("PUT", path, {"allowed_networks": ["10.0.0.0/8"]})  # The tests call from loopback.
    outside = gateway.call("GET", "/v1/models", user)
    assert outside.status == 403
    assert "allowed networks" in outside.body["error"]["message"], outside.body
    assert "end_user" not in outside.body["error"]["message"]
    gateway.must("PUT", path, {})


def test_platform_admins_repair_a_tenants_policies_under_a_grant(
    gateway: GatewayThread, unique: str
) -> None:
    tid = gateway.tenant(unique)["id"]
    admin = gateway.key(unique, role="tenant_admin")
    gateway.call("PUT", "/tenant/v1/policies", admin, {"policies": FORBID_ALL})
    path = f"/admin/v1/tenants/{unique}/policies"

    refused = gateway.admin("PUT", path, {"policies": NO_CHAT})
    assert refused.status == 403 and refused.body["error"]["code"] == "privileged_access_required"
    gateway.grant("admin:policies.update", unique)
    bad = gateway.admin("PUT", path, {"policies": "permit (principal, action, resource);"})
    assert bad.status == 400  # Checked like the tenant's own; the grant is not spent on it.
    repaired = gateway.admin("PUT", path, {"policies": NO_CHAT})
    assert repaired.status == 200, repaired.body
    assert repaired.body["ids"] == [f"tenant.{tid}.no-chat"]
    assert gateway.admin("PUT", path, {"policies": ""}).status == 403  # Single use.
    assert gateway.call("GET", "/tenant/v1/keys", admin).status == 200

    assert gateway.admin("DELETE", path).status == 403
    gateway.grant("admin:policies.delete", unique)
    assert gateway.admin("DELETE", path).status == 204
    assert gateway.must("GET", path)["policies"] == ""
    events = [e for e in gateway.audit_events() if e.get("action", "").startswith("admin:policies")]
    assert {e["action"] for e in events if e.get("decision") == "allow"} >= {
        "admin:policies.update",
        "admin:policies.delete",
    }

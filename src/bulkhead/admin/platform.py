"""/admin/v1: the platform API, for platform admins and auditors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from bulkhead.admin import bootstrap, views
from bulkhead.admin import schemas as s
from bulkhead.admin.control import Control
from bulkhead.admin.effects import Effect, Exempt
from bulkhead.admin.egress import checked_url
from bulkhead.admin.router import Call, Route
from bulkhead.domain import TENANT_ROLES, ApiKey, DeploymentKind, PrincipalKind, Role, TenantContext
from bulkhead.errors import InvalidRequest
from bulkhead.identity.spiffe import PeerRejected, SpiffeId
from bulkhead.runtime import PEER_ID_OPTION, WorkerSupervisor
from bulkhead.runtime.egress import EgressPolicy
from bulkhead.store import repo, upstreams

P = "/admin/v1"


def expiry(seconds: int | None) -> datetime | None:
    return datetime.now(UTC) + timedelta(seconds=seconds) if seconds else None


def bounded_expiry(by: ApiKey | None, expires_at: datetime | None) -> datetime | None:
    """A new key's expiry: never after the issuer's, which it inherits if none is given."""
    if by is None or by.expires_at is None:
        return expires_at
    if expires_at is None:
        return by.expires_at
    if expires_at > by.expires_at:
        raise InvalidRequest(
            f"A key you create cannot outlive your own (it expires {by.expires_at.isoformat()}).",
            param="expires_in_s",
        )
    return expires_at


def platform_issuer(control: Control, ctx: TenantContext) -> ApiKey | None:
    """The platform API key the caller acts with; None for a signed-in person."""
    key = control.catalog.snapshot.keys.get(ctx.credential_id)
    return key if key is not None and key.tenant_id is None else None


def deployment_spec(body: s.ModelCreate, egress: EgressPolicy) -> repo.DeploymentSpec:
    if (body.upstream is None) == (body.worker is None):
        raise InvalidRequest("Give exactly one of 'upstream' or 'worker'.", param="upstream")
    if body.upstream is not None:
        return repo.DeploymentSpec(
            DeploymentKind.UPSTREAM,
            # Canonical, and within the platform's egress policy as far as publishing can tell.
            base_url=checked_url(body.upstream, egress),
            upstream_model=body.upstream_model or body.name,
            credential=body.credential,
            timeout_s=body.timeout_s,
            options=upstream_options(body),
        )
    if body.credential is not None:
        raise InvalidRequest("Local workers take no upstream credential.", param="credential")
    if body.upstream_peer_id is not None:
        raise InvalidRequest("Local workers always use mutual TLS.", param="upstream_peer_id")
    if body.engine is not None:
        raise InvalidRequest("'engine' names an upstream's server.", param="engine")
    return repo.DeploymentSpec(
        DeploymentKind.LOCAL,
        worker=body.worker,
        upstream_model=body.name,
        timeout_s=body.timeout_s,
        options=capacity_options(body),
    )


def capacity_options(body: s.ModelCreate) -> dict[str, str]:
    """How many calls a shared deployment takes at once (`bulkhead.limits.fairshare`)."""
    return {} if body.max_in_flight is None else {"max_in_flight": str(body.max_in_flight)}


def upstream_options(body: s.ModelCreate) -> dict[str, str]:
    options = capacity_options(body)
    if body.engine == "vllm":
        options["engine"] = "vllm"
    if body.upstream_peer_id is None:
        return options
    if not (body.upstream or "").startswith("https://"):
        raise InvalidRequest("Mutual TLS needs an https upstream.", param="upstream")
    try:
        peer = SpiffeId.parse(body.upstream_peer_id)
    except PeerRejected:
        peer = None
    if peer is None or not peer.path:
        raise InvalidRequest("Give a workload's SPIFFE ID.", param="upstream_peer_id")
    return {**options, PEER_ID_OPTION: str(peer)}


def tenant_names(session: Session) -> dict[str, str]:
    return {t.id: t.name for t in repo.list_tenants(session)}


def routes(control: Control, workers: WorkerSupervisor, egress: EgressPolicy) -> list[Route]:
    async def create_tenant(call: Call) -> s.TenantOut:
        body: s.TenantCreate = call.body
        return views.tenant(
            await control.write(lambda db: repo.create_tenant(db, body.name, body.tier))
        )

    async def list_tenants(call: Call) -> list[s.TenantOut]:
        return [views.tenant(t) for t in await control.read(repo.list_tenants)]

    async def get_tenant(call: Call) -> s.TenantOut:
        return views.tenant(await control.read(lambda db: repo.get_tenant(db, call.params["name"])))

    # Imported here: quotas imports admin.tenant, which imports this module.
    from bulkhead.admin import quotas

    async def tier_target(call: Call) -> str | Exempt:
        """A tier move that leaves the tenant's own limits above the new tier needs the grant."""
        body: s.TenantUpdate = call.body
        if body.tier is None:
            return quotas.WITHIN_TIER
        tier = body.tier
        tenant = await control.read(lambda db: repo.get_tenant(db, call.params["name"]))
        return call.params["name"] if quotas.tier_raises(tenant, tier) else quotas.WITHIN_TIER

    async def update_tenant(call: Call) -> s.TenantOut:
        body: s.TenantUpdate = call.body
        if body.status is None and body.tier is None:
            raise InvalidRequest("Give a new 'status' or 'tier'.", param="status")
        return views.tenant(
            await control.write(
                lambda db: repo.update_tenant(
                    db, call.params["name"], status=body.status, tier=body.tier
                )
            )
        )

    def _tenant_roles(roles: list[Role]) -> None:
        if not set(roles) <= TENANT_ROLES:
            raise InvalidRequest(
                "Tenant principals and keys take tenant roles only.", param="roles"
            )

    async def create_principal(call: Call) -> s.PrincipalOut:
        body: s.PrincipalCreate = call.body
        _tenant_roles(body.roles)

        def work(db: Session) -> s.PrincipalOut:
            tenant = repo.get_tenant(db, call.params["name"])
            return views.principal(
                repo.create_principal(
                    db, tenant.id, body.name, PrincipalKind(body.kind), body.roles
                )
            )

        return await control.write(work)

    async def list_principals(call: Call) -> list[s.PrincipalOut]:
        def work(db: Session) -> list[s.PrincipalOut]:
            tenant = repo.get_tenant(db, call.params["name"])
            return [views.principal(p) for p in repo.list_principals(db, tenant.id)]

        return await control.read(work)

    async def mint_target(call: Call) -> str | Exempt:
        body: s.KeyCreate = call.body
        return await bootstrap.grant_target(
            control, call, lambda db: body.role is Role.TENANT_ADMIN
        )

    async def create_key(call: Call) -> s.KeyCreated:
        body: s.KeyCreate = call.body
        _tenant_roles([body.role])
        # An expiring platform key mints nothing that outlives it, in a tenant too.
        expires_at = bounded_expiry(platform_issuer(control, call.ctx), expiry(body.expires_in_s))

        def work(db: Session) -> s.KeyCreated:
            tenant = repo.get_tenant(db, call.params["name"])
            principal = (
                repo.get_principal(db, tenant.id, body.principal) if body.principal else None
            )
            if principal is not None and body.role not in principal.roles:
                raise InvalidRequest("The principal does not hold that role.", param="role")
            created = repo.create_key(
                db,
                tenant.id,
                role=body.role,
                principal=principal,
                models=body.models,
                expires_at=expires_at,
                name=body.name,
            )
            if body.role is Role.TENANT_ADMIN:
                bootstrap.claim(db, call, tenant.id, "admin:keys.create")
            return s.KeyCreated(key=views.key(created.key, tenant.name), secret=created.secret)

        return await control.write(work)

    async def list_keys(call: Call) -> list[s.KeyOut]:
        def work(db: Session) -> list[s.KeyOut]:
            tenant = repo.get_tenant(db, call.params["name"])
            return [views.key(k, tenant.name) for k in repo.list_keys(db, tenant.id)]

        return await control.read(work)

    async def revoke_key(call: Call) -> s.KeyOut:
        key_id = call.params["key_id"]

        def work(db: Session) -> s.KeyOut:
            tenant_id = repo.key_tenant(db, key_id)
            name = repo.get_tenant_by_id(db, tenant_id).name if tenant_id else None
            return views.key(repo.revoke_key(db, tenant_id, key_id), name)

        return await control.write(work)

    async def create_model(call: Call) -> s.ModelOut:
        body: s.ModelCreate = call.body
        spec = deployment_spec(body, egress)

        def work(db: Session) -> s.ModelOut:
            owner = repo.get_tenant(db, body.tenant).id if body.tenant else None
            if spec.credential is not None:
                upstreams.get_credential(db, spec.credential)  # a 404 for an unknown one
            model, deployment = repo.add_model(
                db, body.name, owner, body.endpoints, spec, body.description
            )
            return views.model(repo.ModelListing(model, deployment, ()), tenant_names(db))

        return await control.write(work)

    async def list_models(call: Call) -> list[s.ModelOut]:
        def work(db: Session) -> list[s.ModelOut]:
            names = tenant_names(db)
            return [views.model(m, names) for m in repo.list_models(db)]

        return await control.read(work)

    async def grant(call: Call) -> None:
        body: s.GrantCreate = call.body

        def work(db: Session) -> None:
            repo.grant_model(db, call.params["model"], repo.get_tenant(db, body.tenant).id)

        await control.write(work)

    async def revoke_grant(call: Call) -> None:
        def work(db: Session) -> None:
            tenant = repo.get_tenant(db, call.params["tenant"])
            repo.revoke_grant(db, call.params["model"], tenant.id)

        await control.write(work)

    async def list_workers(call: Call) -> list[s.WorkerOut]:
        return [s.WorkerOut.model_validate(w) for w in workers.status()]

    return [
        Route(
            "POST",
            f"{P}/tenants",
            "admin:tenants.create",
            create_tenant,
            "Create a tenant",
            s.TenantCreate,
            s.TenantOut,
            status=201,
        ),
        Route(
            "GET",
            f"{P}/tenants",
            "admin:tenants.list",
            list_tenants,
            "List tenants",
            response=s.TenantOut,
            many=True,
        ),
        Route(
            "GET",
            f"{P}/tenants/{{name}}",
            "admin:tenants.get",
            get_tenant,
            "Show a tenant",
            response=s.TenantOut,
        ),
        Route(
            "PATCH",
            f"{P}/tenants/{{name}}",
            "admin:tenants.update",
            update_tenant,
            "Suspend or reactivate a tenant, or move it to another isolation tier (down with "
            f"its own limits above the new tier's defaults: a grant for '{quotas.APPROVE}')",
            s.TenantUpdate,
            s.TenantOut,
            effects=frozenset({Effect.RAISE_LIMITS}),
            grant_target=tier_target,
            grant_action=quotas.APPROVE,
        ),
        Route(
            "POST",
            f"{P}/tenants/{{name}}/principals",
            "admin:principals.create",
            create_principal,
            "Create a user or service account",
            s.PrincipalCreate,
            s.PrincipalOut,
            status=201,
        ),
        Route(
            "GET",
            f"{P}/tenants/{{name}}/principals",
            "admin:principals.list",
            list_principals,
            "List a tenant's principals",
            response=s.PrincipalOut,
            many=True,
        ),
        Route(
            "POST",
            f"{P}/tenants/{{name}}/keys",
            "admin:keys.create",
            create_key,
            "Create an API key in a tenant (a grant, but for its first tenant_admin key)",
            s.KeyCreate,
            s.KeyCreated,
            status=201,
            effects=frozenset({Effect.ACT_IN_TENANT}),
            grant_target=mint_target,
        ),
        Route(
            "GET",
            f"{P}/tenants/{{name}}/keys",
            "admin:keys.list",
            list_keys,
            "List a tenant's API keys",
            response=s.KeyOut,
            many=True,
        ),
        Route(
            "POST",
            f"{P}/keys/{{key_id}}/revoke",
            "admin:keys.revoke",
            revoke_key,
            "Revoke an API key",
            response=s.KeyOut,
        ),
        Route(
            "POST",
            f"{P}/models",
            "admin:models.create",
            create_model,
            "Add a model and its deployment",
            s.ModelCreate,
            s.ModelOut,
            status=201,
        ),
        Route(
            "GET",
            f"{P}/models",
            "admin:models.list",
            list_models,
            "List models",
            response=s.ModelOut,
            many=True,
        ),
        Route(
            "POST",
            f"{P}/models/{{model}}/grants",
            "admin:models.grant",
            grant,
            "Grant a shared model to a tenant",
            s.GrantCreate,
            status=204,
        ),
        Route(
            "DELETE",
            f"{P}/models/{{model}}/grants/{{tenant}}",
            "admin:models.revoke_grant",
            revoke_grant,
            "Withdraw a shared model from a tenant",
            status=204,
        ),
        Route(
            "GET",
            f"{P}/workers",
            "admin:workers.list",
            list_workers,
            "List local workers",
            response=s.WorkerOut,
            many=True,
        ),
    ]

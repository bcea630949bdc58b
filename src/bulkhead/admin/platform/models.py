"""/admin/v1/models: models and their deployments, and grants of shared models to tenants."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bulkhead.admin import schemas as s
from bulkhead.admin import views
from bulkhead.admin.egress import checked_url
from bulkhead.admin.router import Call, Route
from bulkhead.domain import DeploymentKind
from bulkhead.errors import InvalidRequest
from bulkhead.identity.spiffe import PeerRejected, SpiffeId
from bulkhead.runtime import PEER_ID_OPTION
from bulkhead.runtime.egress import EgressPolicy
from bulkhead.store import repo, upstreams


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


async def create_model(call: Call) -> s.ModelOut:
    body: s.ModelCreate = call.body
    spec = deployment_spec(body, call.services.egress)

    def work(db: Session) -> s.ModelOut:
        owner = repo.get_tenant(db, body.tenant).id if body.tenant else None
        if spec.credential is not None:
            upstreams.get_credential(db, spec.credential)  # a 404 for an unknown one
        model, deployment = repo.add_model(
            db, body.name, owner, body.endpoints, spec, body.description
        )
        return views.model(repo.ModelListing(model, deployment, ()), tenant_names(db))

    return await call.services.control.write(work)


async def list_models(call: Call) -> list[s.ModelOut]:
    def work(db: Session) -> list[s.ModelOut]:
        names = tenant_names(db)
        return [views.model(m, names) for m in repo.list_models(db)]

    return await call.services.control.read(work)


async def grant(call: Call) -> None:
    body: s.GrantCreate = call.body
    model = call.params["model"]

    def work(db: Session) -> None:
        repo.grant_model(db, model, repo.get_tenant(db, body.tenant).id)

    await call.services.control.write(work)


async def revoke_grant(call: Call) -> None:
    model, name = call.params["model"], call.params["tenant"]

    def work(db: Session) -> None:
        repo.revoke_grant(db, model, repo.get_tenant(db, name).id)

    await call.services.control.write(work)


ROUTES = (
    Route.post(
        "/admin/v1/models",
        action="admin:models.create",
        handler=create_model,
        summary="Add a model and its deployment",
        body=s.ModelCreate,
        response=s.ModelOut,
        status=201,
    ),
    Route.get(
        "/admin/v1/models",
        action="admin:models.list",
        handler=list_models,
        summary="List models",
        response=s.ModelOut,
        many=True,
    ),
    Route.post(
        "/admin/v1/models/{model}/grants",
        action="admin:models.grant",
        handler=grant,
        summary="Grant a shared model to a tenant",
        body=s.GrantCreate,
        response=None,
        status=204,
    ),
    Route.delete(
        "/admin/v1/models/{model}/grants/{tenant}",
        action="admin:models.revoke_grant",
        handler=revoke_grant,
        summary="Withdraw a shared model from a tenant",
        response=None,
        status=204,
    ),
)

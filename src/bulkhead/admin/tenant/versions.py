"""/tenant/v1/models/{model}/versions: a tenant publishes and retires versions of its own models.

The model's plain name routes to its newest version not retired (the
model's first deployment when none is live); `model@version` names one.
Only the tenant's private models have versions here; shared models belong
to the platform.  A version's upstream is the tenant's choice, so it is held
to what the platform allowed the tenant: its upstream allowlist and its
upstream credentials (`admin.upstreams`); a version keeps its model's safety
options (`store.selfservice.inherited`).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bulkhead.admin import schemas as s
from bulkhead.admin.egress import tenant_url
from bulkhead.admin.router import Call, Route
from bulkhead.admin.rules import tenant_id
from bulkhead.domain import DeploymentKind
from bulkhead.store import repo, selfservice, upstreams


def _out(v: selfservice.ModelVersion) -> s.ModelVersionOut:
    return s.ModelVersionOut(
        id=v.id,
        model=v.model,
        version=v.version,
        upstream=v.deployment.base_url,
        upstream_model=v.deployment.upstream_model,
        created_at=v.created_at,
        retired_at=v.retired_at,
        credential=v.deployment.credential,
    )


def _spec(session: Session, tid: str, body: s.ModelVersionCreate) -> repo.DeploymentSpec:
    """The version's deployment, within what the platform allowed the tenant.

    The upstream must match the tenant's allowlist (none: no version at all),
    and a credential must be one the platform allowed the tenant; any other
    answers "not found", whether or not it exists.
    """
    url = tenant_url(body.upstream, upstreams.allowlist(session, tid))
    if body.credential is not None:
        upstreams.require_allowed(session, tid, body.credential)
    return repo.DeploymentSpec(
        DeploymentKind.UPSTREAM,
        base_url=url,
        upstream_model=body.upstream_model or "",
        credential=body.credential,
        timeout_s=body.timeout_s,
    )


async def publish(call: Call) -> s.ModelVersionOut:
    body: s.ModelVersionCreate = call.body
    tid, model = tenant_id(call.ctx), call.params["model"]

    def work(db: Session) -> selfservice.ModelVersion:
        # Another tenant's model is "not found" before anything else is said.
        selfservice.require_own_model(db, tid, model)
        spec = _spec(db, tid, body)
        return selfservice.publish_version(db, tid, model, body.version, spec)

    return _out(await call.services.control.tenant_write(tid, work))


async def retire(call: Call) -> s.ModelVersionOut:
    tid, model, version = tenant_id(call.ctx), call.params["model"], call.params["version"]
    return _out(
        await call.services.control.tenant_write(
            tid, lambda db: selfservice.retire_version(db, tid, model, version)
        )
    )


async def list_versions(call: Call) -> list[s.ModelVersionOut]:
    tid, model = tenant_id(call.ctx), call.params["model"]
    found = await call.services.control.tenant_read(
        tid, lambda db: selfservice.list_versions(db, tid, model)
    )
    return [_out(v) for v in found]


ROUTES = (
    Route.post(
        "/tenant/v1/models/{model}/versions",
        action="tenant:models.versions.create",
        handler=publish,
        summary="Publish a version of one of your tenant's models; the name then routes to it",
        body=s.ModelVersionCreate,
        response=s.ModelVersionOut,
        status=201,
    ),
    Route.get(
        "/tenant/v1/models/{model}/versions",
        action="tenant:models.versions.list",
        handler=list_versions,
        summary="Versions of one of your tenant's models",
        response=s.ModelVersionOut,
        many=True,
    ),
    Route.post(
        "/tenant/v1/models/{model}/versions/{version}/retire",
        action="tenant:models.versions.retire",
        handler=retire,
        summary="Retire a version; the name routes to the newest one left",
        response=s.ModelVersionOut,
    ),
)

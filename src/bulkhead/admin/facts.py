"""What a management call did, for its audit event: what it created, which tenant it touched.

A creation's event must name the created object (a key, principal, tenant,
model, version, request), and a platform action on a tenant must name that
tenant, so that the tenant finds it in its own audit view.  Both are read
here, once, for every route, from the call and its answer: no handler has to
remember them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from bulkhead.domain import TenantContext
from bulkhead.pam import PLATFORM_TARGET, PRIVILEGED

TenantIds = Callable[[str], str | None]
_TENANT_PATH = "/admin/v1/tenants/{name}"


def written_id(method: str, result: object) -> str | None:
    """The id of the object a write created or changed, as its answer names it."""
    if method == "GET" or result is None:
        return None
    key = _field(result, "key")  # a created or rotated API key answers {key, secret}
    if key is not None:
        return _text(_field(key, "id"))
    return _text(_field(result, "id")) or _text(_field(result, "spiffe_id"))


def target_tenant(
    ctx: TenantContext,
    path: str,
    call: tuple[dict[str, str], dict[str, str], Any],
    result: object,
    tenant_ids: TenantIds | None,
) -> str | None:
    """The id of the tenant a platform call acted on (None for tenants' own calls).

    `call` is (path params, query, body).  The tenant is named by the path
    (`/admin/v1/tenants/{name}/…`, `{tenant}`), an audit export's `?tenant=`, the
    body (`tenant`, `target`) or, failing those, the answer (a created
    tenant, a key's or request's tenant).
    """
    if not ctx.is_platform or tenant_ids is None:
        return None
    if _field(result, "object") == "access_request":
        # A request names its tenant by id, and only where its target is one.
        return _text(_field(result, "target_tenant_id"))
    params, query, body = call
    for name in _named_tenants(path, params, query, body, result):
        found = tenant_ids(name)
        if found is not None:
            return found
    if path == "/admin/v1/tenants" and result is not None:
        return _text(_field(result, "id"))  # the tenant this call created
    return None


def _named_tenants(
    path: str, params: dict[str, str], query: dict[str, str], body: Any, result: object
) -> list[str]:
    names = [params.get("name") if path.startswith(_TENANT_PATH) else None]
    names.append(params.get("tenant"))
    if path.startswith("/admin/v1/audit/"):
        names.append(query.get("tenant"))  # a platform auditor reading one tenant's view
    names += [_text(_field(body, "tenant")), _granted_tenant(body)]
    if result is not None:
        names += [_text(_field(result, "tenant")), _text(_field(result, "owner"))]
        key = _field(result, "key")
        names.append(_text(_field(key, "tenant")) if key is not None else None)
    return [name for name in names if name]


def _granted_tenant(body: Any) -> str | None:
    """The tenant an access request's body targets: never a principal's name, nor the platform."""
    target, action = _text(_field(body, "target")), _text(_field(body, "action"))
    privilege = PRIVILEGED.get(action or "")
    if target is None or privilege is None or not privilege.tenant_scoped:
        return None
    return None if privilege.or_platform and target == PLATFORM_TARGET else target


def _field(value: object, name: str) -> object:
    if isinstance(value, BaseModel):
        return getattr(value, name, None)
    if isinstance(value, dict):
        return value.get(name)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None

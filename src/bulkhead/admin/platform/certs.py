"""Client certificates for tenants that require them (private-line / VPN-style access).

The internal CA issues an X.509-SVID ``spiffe://<td>/tenant/<tenant id>/client/<name>``
with a key made in memory for it; both go back in the response, once.  The
key is never stored: a lost key means issuing a new certificate.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import Field

from bulkhead.admin import answers
from bulkhead.admin.deps import need
from bulkhead.admin.router import Call, Route
from bulkhead.admin.schemas import Strict
from bulkhead.crypto import EXPORT_KEY_MATERIAL
from bulkhead.identity.spiffe import workload_id
from bulkhead.store import repo


class ClientCertCreate(Strict):
    name: str = Field(default="default", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    lifetime_s: int = Field(default=86_400, ge=60, le=30 * 86_400)


async def issue(call: Call) -> dict[str, Any]:
    body: ClientCertCreate = call.body
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    sid = workload_id(
        need(call.services.ca, "internal CA").trust_domain, "tenant", tenant.id, "client", body.name
    )
    svid = await asyncio.to_thread(
        need(call.services.ca, "internal CA").issue, sid, timedelta(seconds=body.lifetime_s)
    )
    return {
        "tenant": tenant.name,
        "spiffe_id": str(sid),
        "expires_at": svid.not_after.isoformat(),
        "certificate": svid.cert_pem.decode("ascii"),
        "private_key": svid.key.reveal_pem(EXPORT_KEY_MATERIAL).decode("ascii"),
        "ca_certificate": need(call.services.ca, "internal CA").cert_pem.decode("ascii"),
    }


ROUTES = (
    Route.post(
        "/admin/v1/tenants/{name}/client-certs",
        action="admin:tenants.client_cert",
        handler=issue,
        summary="Issue a client certificate for a tenant (its key is returned once, never stored)",
        body=ClientCertCreate,
        response=answers.ClientCertificate,
    ),
)

"""/admin/v1/access-requests: ask for privileged access, decide on it, list the record."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from bulkhead.admin.router import Call, Route
from bulkhead.admin.schemas import Strict
from bulkhead.pam import MAX_DURATION_S, PLATFORM_TARGET, AccessService

P = "/admin/v1/access-requests"


class AccessRequestCreate(Strict):
    action: str = Field(min_length=1, max_length=64)
    target: str = Field(default=PLATFORM_TARGET, min_length=1, max_length=128)
    reason: str = Field(max_length=1000)
    duration_s: int = Field(default=3600, ge=1, le=MAX_DURATION_S)
    break_glass: bool = False


class AccessDecision(Strict):
    reason: str = Field(max_length=1000)


def routes(access: AccessService) -> list[Route]:
    async def create(call: Call) -> dict[str, Any]:
        body: AccessRequestCreate = call.body
        made = await asyncio.to_thread(
            lambda: access.create(
                call.ctx,
                action=body.action,
                target=body.target,
                reason=body.reason,
                duration_s=body.duration_s,
                break_glass=body.break_glass,
            )
        )
        return made.to_json()

    async def list_requests(call: Call) -> dict[str, Any]:
        found = await asyncio.to_thread(access.list, call.query.get("status"))
        return {"object": "list", "data": [r.to_json() for r in found]}

    async def get(call: Call) -> dict[str, Any]:
        return (await asyncio.to_thread(access.get, call.params["id"])).to_json()

    async def approve(call: Call) -> dict[str, Any]:
        return (await asyncio.to_thread(access.approve, call.ctx, call.params["id"])).to_json()

    async def deny(call: Call) -> dict[str, Any]:
        body: AccessDecision = call.body
        denied = await asyncio.to_thread(access.deny, call.ctx, call.params["id"], body.reason)
        return denied.to_json()

    return [
        Route(
            "POST",
            P,
            "admin:access.create",
            create,
            "Request privileged access (break_glass: granted at once, with an alert)",
            AccessRequestCreate,
            status=201,
        ),
        Route("GET", P, "admin:access.list", list_requests, "Access requests (?status=)"),
        Route("GET", f"{P}/{{id}}", "admin:access.get", get, "One access request"),
        Route(
            "POST",
            f"{P}/{{id}}/approve",
            "admin:access.approve",
            approve,
            "Approve another admin's request: it becomes a time-bound grant",
        ),
        Route(
            "POST",
            f"{P}/{{id}}/deny",
            "admin:access.deny",
            deny,
            "Deny a pending request (or withdraw your own)",
            AccessDecision,
        ),
    ]

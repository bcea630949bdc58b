"""/admin/v1/access-requests: ask for privileged access, decide on it, list the record."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from bulkhead.admin import answers
from bulkhead.admin.deps import need
from bulkhead.admin.router import Call, Route
from bulkhead.admin.schemas import Strict
from bulkhead.pam import MAX_DURATION_S, PLATFORM_TARGET


class AccessRequestCreate(Strict):
    action: str = Field(min_length=1, max_length=64)
    target: str = Field(default=PLATFORM_TARGET, min_length=1, max_length=128)
    reason: str = Field(max_length=1000)
    duration_s: int = Field(default=3600, ge=1, le=MAX_DURATION_S)
    break_glass: bool = False


class AccessDecision(Strict):
    reason: str = Field(max_length=1000)


async def create(call: Call) -> dict[str, Any]:
    body: AccessRequestCreate = call.body
    made = await asyncio.to_thread(
        lambda: need(call.services.pam, "access service").create(
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
    found = await asyncio.to_thread(
        need(call.services.pam, "access service").list, call.query.get("status")
    )
    return {"object": "list", "data": [r.to_json() for r in found]}


async def get(call: Call) -> dict[str, Any]:
    return (
        await asyncio.to_thread(need(call.services.pam, "access service").get, call.params["id"])
    ).to_json()


async def approve(call: Call) -> dict[str, Any]:
    return (
        await asyncio.to_thread(
            need(call.services.pam, "access service").approve, call.ctx, call.params["id"]
        )
    ).to_json()


async def deny(call: Call) -> dict[str, Any]:
    body: AccessDecision = call.body
    denied = await asyncio.to_thread(
        need(call.services.pam, "access service").deny, call.ctx, call.params["id"], body.reason
    )
    return denied.to_json()


ROUTES = (
    Route.post(
        "/admin/v1/access-requests",
        action="admin:access.create",
        handler=create,
        summary="Request privileged access (break_glass: granted at once, with an alert)",
        body=AccessRequestCreate,
        response=answers.AccessRequestOut,
        status=201,
    ),
    Route.get(
        "/admin/v1/access-requests",
        action="admin:access.list",
        handler=list_requests,
        summary="Access requests (?status=)",
        response=answers.AccessRequestOut,
        many=True,
    ),
    Route.get(
        "/admin/v1/access-requests/{id}",
        action="admin:access.get",
        handler=get,
        summary="One access request",
        response=answers.AccessRequestOut,
    ),
    Route.post(
        "/admin/v1/access-requests/{id}/approve",
        action="admin:access.approve",
        handler=approve,
        summary="Approve another admin's request: it becomes a time-bound grant",
        response=answers.AccessRequestOut,
    ),
    Route.post(
        "/admin/v1/access-requests/{id}/deny",
        action="admin:access.deny",
        handler=deny,
        summary="Deny a pending request (or withdraw your own)",
        body=AccessDecision,
        response=answers.AccessRequestOut,
    ),
)

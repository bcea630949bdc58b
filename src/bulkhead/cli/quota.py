"""`bulkhead quota …`: quota-increase requests (a tenant admin asks, a platform admin decides)."""

from __future__ import annotations

from typing import Annotated

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit

app = typer.Typer(
    no_args_is_help=True,
    help="Quota-increase requests: request and list (tenant admin); approve, deny (platform).",
)
COLUMNS = ("id", "tenant", "quota", "value", "status", "privileged", "created_at", "decided_at")


@app.command("request")
def request(
    ctx: typer.Context,
    quota: Annotated[
        str, typer.Option(help="storage_bytes | requests_per_minute | tokens_per_minute")
    ],
    value: Annotated[int, typer.Option(help="The new limit.")],
    reason: Annotated[str, typer.Option(help="Why (10 characters or more).")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Ask the platform to raise one of your tenant's quotas (with a tenant admin's key)."""
    body = {"quota": quota, "value": value, "reason": reason}
    emit(client(ctx).post("/tenant/v1/quota-requests", body), json_, COLUMNS, output=output)


@app.command("list")
def list_(
    ctx: typer.Context,
    all_tenants: Annotated[
        bool, typer.Option("--all", help="Every tenant's requests (a platform key).")
    ] = False,
    status: Annotated[str | None, typer.Option(help="pending | approved | denied")] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """List quota requests, newest first: your tenant's, or with --all every tenant's."""
    path = "/admin/v1/quota-requests" if all_tenants else "/tenant/v1/quota-requests"
    query = f"?status={status}" if status else ""
    emit(client(ctx).get(path + query)["data"], json_, COLUMNS, "quota requests", output=output)


@app.command("approve")
def approve(
    ctx: typer.Context,
    request_id: str,
    reason: Annotated[str, typer.Option(help="A note for the record.")] = "",
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Approve a request; above the tier default this needs a grant on the tenant first:
    `bulkhead access request --action admin:quota_requests.approve --target TENANT`."""
    path = f"/admin/v1/quota-requests/{request_id}/approve"
    emit(client(ctx).post(path, {"reason": reason}), json_, COLUMNS, output=output)


@app.command("deny")
def deny(
    ctx: typer.Context,
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why: it goes on the record.")] = "",
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Deny a pending request."""
    path = f"/admin/v1/quota-requests/{request_id}/deny"
    emit(client(ctx).post(path, {"reason": reason}), json_, COLUMNS, output=output)

"""`bulkhead tenant …`"""

from __future__ import annotations

from typing import Annotated

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import JsonFlag, emit

app = typer.Typer(no_args_is_help=True, help="Manage tenants.")
COLUMNS = ("name", "tier", "status", "id", "created_at")


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    tier: Annotated[str, typer.Option(help="shared | mig | dedicated")] = "shared",
    json_: JsonFlag = False,
) -> None:
    """Create a tenant."""
    emit(client(ctx).post("/admin/v1/tenants", {"name": name, "tier": tier}), json_, COLUMNS)


@app.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List tenants."""
    emit(client(ctx).get("/admin/v1/tenants")["data"], json_, COLUMNS, "tenants")


@app.command("show")
def show(ctx: typer.Context, name: str, json_: JsonFlag = False) -> None:
    """Show one tenant."""
    emit(client(ctx).get(f"/admin/v1/tenants/{name}"), json_, COLUMNS)


@app.command("suspend")
def suspend(ctx: typer.Context, name: str, json_: JsonFlag = False) -> None:
    """Suspend a tenant: its keys stop working at once."""
    result = client(ctx).request("PATCH", f"/admin/v1/tenants/{name}", {"status": "suspended"})
    emit(result, json_, COLUMNS)


@app.command("activate")
def activate(ctx: typer.Context, name: str, json_: JsonFlag = False) -> None:
    """Reactivate a suspended tenant."""
    result = client(ctx).request("PATCH", f"/admin/v1/tenants/{name}", {"status": "active"})
    emit(result, json_, COLUMNS)

"""`bulkhead kms …`: a tenant's key-encryption keys."""

from __future__ import annotations

from typing import Annotated

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit, json_wanted, safe

app = typer.Typer(no_args_is_help=True, help="Tenant key-encryption keys (KMS).")
Tenant = Annotated[str, typer.Option(help="Tenant name.")]


def _show(result: dict[str, object], as_json: bool, output: Format) -> None:
    if json_wanted(as_json, output):
        emit(result, True)
        return
    typer.echo(safe(f"tenant {result['tenant']}: primary KEK version {result['primary_version']}"))
    columns = ("version", "objects", "created_at", "retired_at")
    emit(result["versions"], False, columns, "KEK versions", output=output)


@app.command("status")
def status(
    ctx: typer.Context, tenant: Tenant, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Show the tenant's KEK versions (never key material)."""
    _show(client(ctx).get(f"/admin/v1/tenants/{tenant}/kms"), json_, output)


@app.command("rotate")
def rotate(
    ctx: typer.Context, tenant: Tenant, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Add a KEK version and re-wrap the tenant's data keys without touching data."""
    _show(client(ctx).post(f"/admin/v1/tenants/{tenant}/kms/rotate"), json_, output)


@app.command("retire")
def retire(
    ctx: typer.Context,
    tenant: Tenant,
    version: Annotated[int, typer.Option(help="The KEK version to retire.")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Retire a KEK version no object uses any more (rotate first)."""
    _show(
        client(ctx).post(f"/admin/v1/tenants/{tenant}/kms/versions/{version}/retire"), json_, output
    )

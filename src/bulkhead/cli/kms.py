"""`bulkhead kms …`: tenants' key-encryption keys, and every key the platform holds."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bulkhead.cli.common import client
from bulkhead.cli.output import JsonFlag, console, emit, fail

app = typer.Typer(no_args_is_help=True, help="Key-encryption keys and the platform's own keys.")
Tenant = Annotated[str, typer.Option(help="Tenant name.")]
MaybeTenant = Annotated[str | None, typer.Option("--tenant", help="Tenant name.")]
# The columns of `kms status --all`: what a person needs to see which key is overdue
# (they fit 80 columns); `-o wide` adds where each key is held and what it protects.
INVENTORY = ("kind", "owner", "version", "state", "age_days", "next_rotation")
WIDE = (*INVENTORY, "held_in", "protects")
WIDE_COLUMNS = 240
Output = Annotated[
    str, typer.Option("-o", "--output", help="table (fits 80 columns) or wide (every column).")
]
# `kms rotate`'s flags for the platform's own keys, and the kind each names in the API.
PLATFORM_KINDS = {"--platform-kek": "platform-kek", "--ca": "ca", "--cache-salt": "cache-salt"}


def _show(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        emit(result, True)
        return
    typer.echo(f"tenant {result['tenant']}: primary KEK version {result['primary_version']}")
    emit(result["versions"], False, ("version", "created_at", "retired_at"), "KEK versions")


def _inventory(result: dict[str, Any], as_json: bool, output: str) -> None:
    if as_json:
        emit(result, True)
        return
    if output not in ("table", "wide"):
        raise fail(f"--output is table or wide, not {output!r}")
    rows = [
        {**key, "next_rotation": (key["next_rotation_at"] or "-")[:10]} for key in result["data"]
    ]
    columns = WIDE if output == "wide" else INVENTORY
    table = Table(title=f"Every key the platform holds, as of {result['as_of'][:19]}")
    for column in columns:
        # Short values are never wrapped; long ones fold: none is cut, each stays copyable.
        short = output == "wide" or column not in ("owner", "held_in", "protects")
        table.add_column(column.replace("_", " "), overflow="fold", no_wrap=short)
    for row in rows:
        table.add_row(*("-" if row.get(c) is None else str(row[c]) for c in columns))
    # Wide lines are as long as they need to be (for a pager or a wide terminal).
    (Console(width=WIDE_COLUMNS) if output == "wide" else console).print(table)


@app.command("status")
def status(
    ctx: typer.Context,
    tenant: MaybeTenant = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every key the platform holds, in one table.")
    ] = False,
    output: Output = "table",
    json_: JsonFlag = False,
) -> None:
    """Show a tenant's KEK versions, or with --all every key the platform holds (never material)."""
    if all_ == (tenant is not None):
        raise fail("give either --tenant NAME or --all")
    if all_:
        _inventory(client(ctx).get("/admin/v1/keys/status"), json_, output)
        return
    _show(client(ctx).get(f"/admin/v1/tenants/{tenant}/kms"), json_)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    tenant: MaybeTenant = None,
    platform_kek: Annotated[
        bool, typer.Option("--platform-kek", help="The platform's own KEK (_platform).")
    ] = False,
    ca: Annotated[
        bool, typer.Option("--ca", help="The internal CA (needs a grant: admin:kms.ca.rotate).")
    ] = False,
    cache_salt: Annotated[
        bool, typer.Option("--cache-salt", help="The secret of the tenants' cache salts.")
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Rotate a tenant's KEK (re-wrapping its data keys), or one of the platform's own keys."""
    chosen = [
        flag for flag, on in zip(PLATFORM_KINDS, (platform_kek, ca, cache_salt), strict=True) if on
    ]
    if len(chosen) + (tenant is not None) != 1:
        raise fail("give exactly one of --tenant NAME, " + ", ".join(PLATFORM_KINDS))
    if tenant is not None:
        _show(client(ctx).post(f"/admin/v1/tenants/{tenant}/kms/rotate"), json_)
        return
    kind = PLATFORM_KINDS[chosen[0]]
    result = client(ctx).post(f"/admin/v1/keys/{kind}/rotate")
    if json_:
        emit(result, True)
    else:
        typer.echo(f"{result['kind']} rotated: {result['rotated']}")


@app.command("retire")
def retire(
    ctx: typer.Context,
    tenant: Tenant,
    version: Annotated[int, typer.Option(help="The KEK version to retire.")],
    json_: JsonFlag = False,
) -> None:
    """Retire a KEK version no object uses any more (rotate first)."""
    _show(client(ctx).post(f"/admin/v1/tenants/{tenant}/kms/versions/{version}/retire"), json_)

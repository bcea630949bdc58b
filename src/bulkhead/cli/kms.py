"""`bulkhead kms`: tenants' key-encryption keys and the platform's own keys."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit, fail, json_wanted, safe

app = typer.Typer(no_args_is_help=True, help="Key-encryption keys and the platform's own keys.")
Tenant = Annotated[str, typer.Option(help="Tenant name.")]
MaybeTenant = Annotated[str | None, typer.Option("--tenant", help="Tenant name.")]
# The columns of `kms status --all`: what a person needs to see which key is overdue
# (they fit 80 columns); `-o wide` adds where each key is held and what it protects.
INVENTORY = ("kind", "owner", "version", "state", "age_days", "next_rotation")
WIDE = (*INVENTORY, "held_in", "protects")
# `kms rotate`'s flags for the platform's own keys, and the kind each names in the API.
PLATFORM_KINDS = {"--platform-kek": "platform-kek", "--ca": "ca", "--cache-salt": "cache-salt"}


def _show(result: dict[str, object], as_json: bool, output: Format) -> None:
    if json_wanted(as_json, output):
        emit(result, True)
        return
    typer.echo(safe(f"tenant {result['tenant']}: primary KEK version {result['primary_version']}"))
    columns = ("version", "objects", "created_at", "retired_at")
    emit(result["versions"], False, columns, "KEK versions", output=output)


def _inventory(result: dict[str, Any], as_json: bool, output: Format) -> None:
    if json_wanted(as_json, output):
        emit(result, True)
        return
    rows = [
        {**key, "next_rotation": (key["next_rotation_at"] or "-")[:10]} for key in result["data"]
    ]
    columns = WIDE if output is Format.WIDE else INVENTORY
    title = f"Every key the platform holds, as of {result['as_of'][:19]}"
    emit(rows, False, columns, title, output=output)


@app.command("status")
def status(
    ctx: typer.Context,
    tenant: MaybeTenant = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every key the platform holds, in one table.")
    ] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Show a tenant's KEK versions, or with --all every key the platform holds (never material)."""
    if all_ == (tenant is not None):
        raise fail("give either --tenant NAME or --all")
    if all_:
        _inventory(client(ctx).get("/admin/v1/keys/status"), json_, output)
        return
    _show(client(ctx).get(f"/admin/v1/tenants/{tenant}/kms"), json_, output)


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
    output: Output = Format.TABLE,
) -> None:
    """Rotate a tenant's KEK (re-wrapping its data keys), or one of the platform's own keys."""
    chosen = [
        flag for flag, on in zip(PLATFORM_KINDS, (platform_kek, ca, cache_salt), strict=True) if on
    ]
    if len(chosen) + (tenant is not None) != 1:
        raise fail("give exactly one of --tenant NAME, " + ", ".join(PLATFORM_KINDS))
    if tenant is not None:
        _show(client(ctx).post(f"/admin/v1/tenants/{tenant}/kms/rotate"), json_, output)
        return
    result = client(ctx).post(f"/admin/v1/keys/{PLATFORM_KINDS[chosen[0]]}/rotate")
    if json_wanted(json_, output):
        emit(result, True)
    else:
        typer.echo(safe(f"{result['kind']} rotated: {result['rotated']}"))


@app.command("retire")
def retire(
    ctx: typer.Context,
    version: Annotated[int, typer.Option(help="The KEK version to retire.")],
    tenant: MaybeTenant = None,
    platform_kek: Annotated[
        bool,
        typer.Option(
            "--platform-kek",
            help="The platform's own KEK (needs a grant: admin:kms.platform.retire).",
        ),
    ] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Retire a KEK version no object uses any more (rotate first; needs an approved grant)."""
    if platform_kek == (tenant is not None):
        raise fail("give exactly one of --tenant NAME, --platform-kek")
    if tenant is not None:
        path = f"/admin/v1/tenants/{tenant}/kms/versions/{version}/retire"
        _show(client(ctx).post(path), json_, output)
        return
    result = client(ctx).post(f"/admin/v1/keys/platform-kek/versions/{version}/retire")
    if json_wanted(json_, output):
        emit(result, True)
        return
    typer.echo(safe(f"platform KEK version {version} retired; primary {result['primary_version']}"))
    columns = ("version", "created_at", "retired_at")
    emit(result["versions"], False, columns, "Platform KEK versions", output=output)

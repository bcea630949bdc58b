"""`bulkhead admin …`: the platform's own principals (platform admins and auditors).

A new principal's enrolment secret is printed once, for its creator to hand
to the person, who runs `bulkhead login --enrol` with it.  Adding anyone to
the platform, and removing or disabling an admin, takes a grant another
admin approved (`bulkhead access request --action admin:platform_principals.<step>
--target NAME`, or `NAME:platform_admin` where the change gives the admin
role), except while the platform has a single admin.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from bulkhead.cli.common import client
from bulkhead.cli.key import parse_duration
from bulkhead.cli.output import Format, JsonFlag, Output, emit, fail, json_wanted, secret

app = typer.Typer(no_args_is_help=True, help="Platform admins and auditors.")
P = "/admin/v1/principals"
COLUMNS = ("name", "roles", "status", "enrolled", "keys", "email", "id")
ROLES_HELP = "platform_admin or platform_auditor (repeat for both)."


def _path(name: str) -> str:
    return f"{P}/{quote(name, safe='')}"


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    role: Annotated[list[str], typer.Option("--role", help=ROLES_HELP)],
    email: Annotated[str | None, typer.Option(help="How to reach the person.")] = None,
    expires: Annotated[
        str | None, typer.Option(help="How long the enrolment secret stays good, e.g. 24h.")
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Create a platform principal; its one-time enrolment secret is printed once."""
    body: dict[str, Any] = {"name": name, "roles": role}
    if email is not None:
        body["email"] = email
    if expires is not None:
        body["enrolment_expires_in_s"] = parse_duration(expires)
    result = client(ctx, enrolment_expires_in_s="expires", roles="role").post(P, body)
    if json_wanted(json_, output):
        emit(result, True)
        return
    emit(
        {k: v for k, v in result.items() if k != "enrolment_secret"}, False, COLUMNS, output=output
    )
    label = f"enrolment secret (shown once, until {result['enrolment_expires_at']})"
    secret(label, result["enrolment_secret"])
    typer.echo(f"hand it to {name}, who runs: bulkhead login --enrol --principal {name}")


@app.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False, output: Output = Format.TABLE) -> None:
    """List platform principals."""
    emit(client(ctx).get(P)["data"], json_, COLUMNS, "platform principals", output=output)


@app.command("show")
def show(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Show one platform principal."""
    columns = (*COLUMNS, "enrolment_expires_at", "created_at", "disabled_at")
    emit(client(ctx).get(_path(name)), json_, columns, output=output)


@app.command("set-roles")
def set_roles(
    ctx: typer.Context,
    name: str,
    role: Annotated[list[str], typer.Option("--role", help=ROLES_HELP)],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Replace a principal's roles (never your own); keys and sessions in a dropped role end."""
    result = client(ctx, roles="role").request("PUT", f"{_path(name)}/roles", {"roles": role})
    emit(result, json_, COLUMNS, output=output)


@app.command("disable")
def disable(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Disable a principal: its keys, sessions and enrolment end at once."""
    emit(
        client(ctx).post(f"{_path(name)}/disable"), json_, (*COLUMNS, "revoked_keys"), output=output
    )


@app.command("enable")
def enable(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Let a disabled principal sign in again (its old keys stay revoked)."""
    emit(client(ctx).post(f"{_path(name)}/enable"), json_, COLUMNS, output=output)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Delete a platform principal, with its keys, sessions and password."""
    if not yes:
        raise fail(f"Deleting '{name}' removes it for good; add --yes.", code=2)
    emit(
        client(ctx).request("DELETE", _path(name)),
        json_,
        ("principal", "id", "deleted"),
        output=output,
    )

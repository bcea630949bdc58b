"""`bulkhead key …`"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

import typer

from bulkhead.cli import limits
from bulkhead.cli.common import client
from bulkhead.cli.output import (
    Column,
    Format,
    JsonFlag,
    Output,
    Rank,
    emit,
    fail,
    json_wanted,
    secret,
)

app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.command("set-limits")(limits.set_key_limits)
# The principal's id is on every key but rarely copied from here: it gives way first.
COLUMNS = (
    "id",
    "tenant",
    "role",
    "models",
    "name",
    "expires_at",
    "revoked_at",
    Column("principal_id", Rank.DETAIL),
)
NEW_KEY_LABEL = "secret (shown once)"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if match is None:
        raise fail(f"--expires must look like 30d, 12h, 90m or 2w, got {text!r}", code=2)
    return int(match.group(1)) * _UNITS[match.group(2)]


@app.command("create")
def create(
    ctx: typer.Context,
    tenant: Annotated[
        str | None,
        typer.Option(
            help="Tenant name (a platform admin; a grant, but for the tenant's first "
            "tenant_admin key). Without it: a key in your own tenant (a tenant admin's key)."
        ),
    ] = None,
    role: Annotated[str, typer.Option(help="Role the key acts with.")] = "end_user",
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models; all if absent.")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. 30d.")] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    principal: Annotated[str | None, typer.Option(help="Principal name.")] = None,
    platform: Annotated[
        bool,
        typer.Option(
            "--platform",
            help="A key of the platform principal --principal, in a platform role it holds "
            "(an admin key only for yourself; another's auditor key needs a grant).",
        ),
    ] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Create a key; its secret is printed once and cannot be shown again.

    A tenant admin's key creates keys no broader than itself (models, expiry, limits).
    """
    body: dict[str, Any] = {"role": role, "name": name}
    if models:
        body["models"] = [m.strip() for m in models.split(",") if m.strip()]
    if expires:
        body["expires_in_s"] = parse_duration(expires)
    if principal and not platform:
        body["principal"] = principal
    path = _create_path(tenant, principal, platform, models)
    _show_new(client(ctx, expires_in_s="expires").post(path, body), json_, output)


def _create_path(tenant: str | None, principal: str | None, platform: bool, models: Any) -> str:
    if not platform:
        return f"/admin/v1/tenants/{tenant}/keys" if tenant else "/tenant/v1/keys"
    if tenant or models:
        raise fail("--platform keys belong to no tenant and reach no models", code=2)
    if not principal:
        raise fail("--platform needs --principal NAME: a platform key is bound to one", code=2)
    return f"/admin/v1/principals/{quote(principal, safe='')}/keys"


@app.command("list")
def list_(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Tenant name.")] = None,
    principal: Annotated[
        str | None, typer.Option(help="A platform principal's keys, instead of a tenant's.")
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """List a tenant's keys, or a platform principal's (never their secrets)."""
    if (tenant is None) == (principal is None):
        raise fail("give --tenant NAME or --principal NAME (a platform principal)", code=2)
    path = (
        f"/admin/v1/tenants/{tenant}/keys"
        if tenant
        else f"/admin/v1/principals/{quote(principal or '', safe='')}/keys"
    )
    emit(client(ctx).get(path)["data"], json_, COLUMNS, "keys", output=output)


@app.command("revoke")
def revoke(
    ctx: typer.Context, key_id: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Revoke a key; it is refused from the very next request."""
    emit(client(ctx).post(f"/admin/v1/keys/{key_id}/revoke"), json_, COLUMNS, output=output)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    key_id: str,
    grace: Annotated[
        str | None, typer.Option(help="How long the old key keeps working, e.g. 1h (at most 1d).")
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Rotate one of your tenant's keys (a tenant admin's key): the new secret is printed once."""
    body = {"grace_s": parse_duration(grace)} if grace else {}
    result = client(ctx, grace_s="grace").post(f"/tenant/v1/keys/{key_id}/rotate", body)
    _show_new(result, json_, output)


def _show_new(result: dict[str, Any], json_: bool, output: Format) -> None:
    """A new key: its record as a table, then its secret alone on a line, shown this once."""
    if json_wanted(json_, output):
        emit(result, True)
        return
    emit(result["key"], False, COLUMNS, output=output)
    secret(NEW_KEY_LABEL, result["secret"])

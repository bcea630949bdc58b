"""`bulkhead tenant …`"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from bulkhead.cli import guard, limits, policies, usage
from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit, fail

app = typer.Typer(no_args_is_help=True, help="Manage tenants.")
COLUMNS = ("name", "tier", "status", "id", "created_at")
app.command("limits")(limits.show)
app.command("set-limits")(limits.set_tenant_limits)
app.command("guard")(guard.show)
app.command("set-guard")(guard.set_guard)
app.command("policies")(policies.show)
app.command("set-policies")(policies.set_policies)
app.command("clear-policies")(policies.clear_policies)
app.command("usage")(usage.show)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    tier: Annotated[str, typer.Option(help="shared | mig | dedicated")] = "shared",
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Create a tenant."""
    emit(
        client(ctx).post("/admin/v1/tenants", {"name": name, "tier": tier}),
        json_,
        COLUMNS,
        output=output,
    )


@app.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False, output: Output = Format.TABLE) -> None:
    """List tenants."""
    emit(client(ctx).get("/admin/v1/tenants")["data"], json_, COLUMNS, "tenants", output=output)


@app.command("show")
def show(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Show one tenant."""
    emit(client(ctx).get(f"/admin/v1/tenants/{name}"), json_, COLUMNS, output=output)


@app.command("suspend")
def suspend(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Suspend a tenant: its keys stop working at once."""
    result = client(ctx).request("PATCH", f"/admin/v1/tenants/{name}", {"status": "suspended"})
    emit(result, json_, COLUMNS, output=output)


@app.command("set-tier")
def set_tier(
    ctx: typer.Context,
    name: str,
    tier: Annotated[str, typer.Option(help="shared | mig | dedicated")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Move a tenant to another isolation tier; its private workers restart on the new one."""
    result = client(ctx).request("PATCH", f"/admin/v1/tenants/{name}", {"tier": tier})
    emit(result, json_, COLUMNS, output=output)


@app.command("activate")
def activate(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Reactivate a suspended tenant."""
    result = client(ctx).request("PATCH", f"/admin/v1/tenants/{name}", {"status": "active"})
    emit(result, json_, COLUMNS, output=output)


CONFIG_COLUMNS = (
    "tenant",
    "retention",
    "retention_days",
    "kek_rotation_days",
    "limits_fail_open",
    "anomaly_throttle",
)


@app.command("config")
def config(
    ctx: typer.Context,
    name: str,
    retention: Annotated[
        str | None, typer.Option(help="none (keep nothing) | encrypted (keep, encrypted)")
    ] = None,
    retention_days: Annotated[int | None, typer.Option(help="Days to keep exchanges.")] = None,
    kek_rotation_days: Annotated[
        int | None, typer.Option(help="Rotate the tenant's KEK every N days; 0 = off.")
    ] = None,
    anomaly_throttle: Annotated[
        bool | None,
        typer.Option(
            "--anomaly-throttle/--no-anomaly-throttle",
            help="Throttle a key for a while when the anomaly detector alerts on it.",
        ),
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Show a tenant's settings, or change those given."""
    changes = {
        k: v
        for k, v in (
            ("retention", retention),
            ("retention_days", retention_days),
            ("kek_rotation_days", kek_rotation_days),
            ("anomaly_throttle", anomaly_throttle),
        )
        if v is not None
    }
    path = f"/admin/v1/tenants/{name}/config"
    result = client(ctx).request("PATCH", path, changes) if changes else client(ctx).get(path)
    emit(result, json_, CONFIG_COLUMNS, output=output)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Delete a tenant and crypto-shred its data (its keys are destroyed)."""
    if not yes:
        typer.echo(f"Deleting '{name}' destroys its keys and data for good; add --yes.", err=True)
        raise typer.Exit(2)
    result = client(ctx).request("DELETE", f"/admin/v1/tenants/{name}")
    emit(result, json_, ("tenant", "id", "deleted", "keys_destroyed"), output=output)


@app.command("client-cert")
def client_cert(
    ctx: typer.Context,
    name: str,
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write the files to.")],
    client_name: Annotated[str, typer.Option("--name", help="Name in the SPIFFE ID.")] = "default",
    lifetime_s: Annotated[int, typer.Option(help="Lifetime in seconds (max 30 days).")] = 86_400,
    json_: JsonFlag = False,
) -> None:
    """Issue a client certificate for a tenant: writes client.pem, client.key (0600), ca.pem."""
    body = {"name": client_name, "lifetime_s": lifetime_s}
    result = client(ctx, name="client_name").post(f"/admin/v1/tenants/{name}/client-certs", body)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(out / "client.key", result.pop("private_key"), 0o600)
    _write(out / "client.pem", result.pop("certificate"), 0o644)
    _write(out / "ca.pem", result.pop("ca_certificate"), 0o644)
    columns = ("tenant", "spiffe_id", "expires_at", "directory")
    emit({**result, "directory": str(out)}, json_, columns)


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


ATTRIBUTE_COLUMNS = (
    "tenant",
    "allowed_networks",
    "allowed_hours",
    "regions",
    "default_classification",
)


@app.command("attributes")
def attributes(
    ctx: typer.Context,
    name: str,
    network: Annotated[
        list[str] | None, typer.Option(help="Allowed client network (CIDR); repeat for more.")
    ] = None,
    hours: Annotated[
        str | None, typer.Option(help="Allowed hours, UTC, START-END (e.g. 8-18; may wrap).")
    ] = None,
    region: Annotated[
        list[str] | None, typer.Option(help="Region its models may run in; repeat for more.")
    ] = None,
    classification: Annotated[
        str | None,
        typer.Option(help="Default classification of its own models: public | internal | …"),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Start from no attributes, not the current ones.")
    ] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Show a tenant's policy attributes, or change those given (the rest are kept)."""
    path = f"/admin/v1/tenants/{name}/attributes"
    api = client(
        ctx,
        allowed_networks="network",
        allowed_hours="hours",
        regions="region",
        default_classification="classification",
    )
    if not (network or hours or region or classification or clear):
        emit(api.get(path), json_, ATTRIBUTE_COLUMNS, output=output)
        return
    body: dict[str, Any] = {} if clear else dict(api.get(path))
    body.pop("tenant", None)
    if network:
        body["allowed_networks"] = network
    if hours:
        start, sep, end = hours.partition("-")
        if not (sep and start.strip().isdigit() and end.strip().isdigit()):
            raise fail("--hours takes START-END in whole UTC hours, e.g. 8-18", code=2)
        body["allowed_hours"] = {"start": int(start), "end": int(end)}
    if region:
        body["regions"] = region
    if classification:
        body["default_classification"] = classification
    body = {k: v for k, v in body.items() if v is not None}
    emit(api.request("PUT", path, body), json_, ATTRIBUTE_COLUMNS, output=output)


@app.command("clearance")
def clearance(
    ctx: typer.Context,
    name: str,
    principal: str,
    level: Annotated[
        str | None, typer.Argument(help="public | internal | confidential | restricted")
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Show a principal's clearance (its API keys' and sign-ins'), or set it."""
    path = f"/admin/v1/tenants/{name}/principals/{principal}/attributes"
    api = client(ctx, clearance="level")
    result = api.request("PUT", path, {"clearance": level}) if level else api.get(path)
    emit(result, json_, ("tenant", "principal", "clearance"), output=output)

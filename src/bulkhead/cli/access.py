"""`bulkhead access …`: privileged access requests, approvals and break-glass."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Column, Format, JsonFlag, Output, Rank, emit, fail, json_wanted

app = typer.Typer(
    no_args_is_help=True,
    help="Privileged access: request, approve (another admin), deny, list.",
)
P = "/admin/v1/access-requests"
# Who asked is an id a person rarely copies from here: it gives way to what was asked.
COLUMNS = (
    "id",
    "action",
    "target",
    "status",
    Column("requester_id", Rank.DETAIL),
    "expires_at",
    "break_glass",
)
_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", text.strip())
    if match is None:
        raise fail(f"--duration must look like 30m, 1h or 90s, got {text!r}", code=2)
    return int(match.group(1)) * _UNITS[match.group(2)]


def _show(result: dict[str, Any], as_json: bool, output: Format) -> None:
    emit(result, as_json, COLUMNS, output=output)


@app.command("request")
def request(
    ctx: typer.Context,
    action: Annotated[str, typer.Option(help="The privileged action, e.g. admin:tenants.delete.")],
    reason: Annotated[str, typer.Option(help="Why: it goes on the record.")],
    target: Annotated[str, typer.Option(help="Tenant name, or 'platform'.")] = "platform",
    duration: Annotated[str, typer.Option(help="How long the grant lasts, e.g. 1h.")] = "1h",
    break_glass: Annotated[
        bool, typer.Option("--break-glass", help="Grant at once, raising an alert.")
    ] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Ask for a time-bound grant; a different platform admin approves it."""
    if not 10 <= len(reason.strip()) <= 1000:
        raise fail("--reason must say why in 10 to 1000 characters: it goes on the record", code=2)
    body = {
        "action": action,
        "target": target,
        "reason": reason,
        "duration_s": parse_duration(duration),
        "break_glass": break_glass,
    }
    result = client(ctx, duration_s="duration").post(P, body)
    _show(result, json_, output)
    if break_glass and not json_wanted(json_, output):
        typer.echo("BREAK-GLASS: granted at once; the alert has gone out.", err=True)


@app.command("approve")
def approve(
    ctx: typer.Context, request_id: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Approve another admin's request; it becomes a grant until it expires."""
    _show(client(ctx).post(f"{P}/{request_id}/approve"), json_, output)


@app.command("deny")
def deny(
    ctx: typer.Context,
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why: it goes on the record.")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Deny a pending request (or withdraw your own)."""
    _show(client(ctx).post(f"{P}/{request_id}/deny", {"reason": reason}), json_, output)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="pending | approved | denied | expired | used")
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """List access requests, newest first."""
    query = f"?status={status}" if status else ""
    result = client(ctx).get(P + query)["data"]
    emit(result, json_, COLUMNS, "access requests", output=output)

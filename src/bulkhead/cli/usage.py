"""`bulkhead tenant usage`: a tenant's model calls, tokens, latency and refusals (durable)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit

TOTALS = (
    "requests",
    "successes",
    "errors",
    "refusals",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms_avg",
    "latency_ms_max",
)
_GROUP_COLUMNS = {"model": "model", "key": "key", "reason": "reason", "hour": "start"}


def show(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The tenant (platform admin); omit with a tenant key.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601 or epoch seconds, UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to this time (exclusive).")] = None,
    group_by: Annotated[
        str, typer.Option(help="Comma-separated: model, key, reason, and hour or day.")
    ] = "model",
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Show a tenant's usage, as every gateway on the database reports it."""
    query = {"since": since, "until": until, "group_by": group_by}
    given = urlencode({k: v for k, v in query.items() if v is not None})
    base = f"/admin/v1/tenants/{quote(name, safe='')}/usage" if name else "/tenant/v1/usage"
    rows = client(ctx).get(f"{base}?{given}")["data"]
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    columns = [_GROUP_COLUMNS.get(g, "start") for g in groups]
    emit(rows, json_, (*columns, *TOTALS), "usage", output=output)

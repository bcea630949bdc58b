"""`bulkhead worker …`: the gateway's local model workers (a platform key)."""

from __future__ import annotations

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit

app = typer.Typer(no_args_is_help=True, help="Local model workers: list (platform).")
COLUMNS = ("tenant", "deployment", "device", "pid", "state", "restarts", "sandbox")


@app.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False, output: Output = Format.TABLE) -> None:
    """Each worker with its tenant, device, state and the sandbox features in force;
    with --json also those it goes without, and why."""
    emit(client(ctx).get("/admin/v1/workers")["data"], json_, COLUMNS, "workers", output=output)

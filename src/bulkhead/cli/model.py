"""`bulkhead model …`"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import JsonFlag, emit, fail

app = typer.Typer(no_args_is_help=True, help="Manage models and their deployments.")
COLUMNS = ("name", "shared", "owner", "kind", "upstream", "upstream_model", "worker", "granted_to")


@app.command("add")
def add(
    ctx: typer.Context,
    name: str,
    upstream: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL (…/v1).")] = None,
    upstream_model: Annotated[str | None, typer.Option(help="Model name upstream.")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="Env var with the upstream key.")] = None,
    worker: Annotated[
        str | None, typer.Option(help="Local worker: demo-chat | minilm-embed.")
    ] = None,
    shared: Annotated[bool, typer.Option("--shared", help="Shared; grant it to tenants.")] = False,
    tenant: Annotated[str | None, typer.Option(help="Owner of a private model.")] = None,
    endpoints: Annotated[
        str, typer.Option(help="chat,completions,embeddings")
    ] = "chat,completions",
    timeout: Annotated[float, typer.Option(help="Upstream read timeout in seconds.")] = 60.0,
    json_: JsonFlag = False,
) -> None:
    """Add a model: exactly one of --shared or --tenant."""
    if shared == (tenant is not None):
        raise fail("give exactly one of --shared or --tenant NAME", code=2)
    body: dict[str, Any] = {
        "name": name,
        "upstream": upstream,
        "upstream_model": upstream_model,
        "api_key_env": api_key_env,
        "worker": worker,
        "tenant": tenant,
        "timeout_s": timeout,
        "endpoints": [e.strip() for e in endpoints.split(",") if e.strip()],
    }
    emit(
        client(ctx).post("/admin/v1/models", {k: v for k, v in body.items() if v is not None}),
        json_,
        COLUMNS,
    )


@app.command("grant")
def grant(
    ctx: typer.Context,
    name: str,
    tenant: Annotated[str, typer.Option(help="Tenant to grant the shared model to.")],
    json_: JsonFlag = False,
) -> None:
    """Grant a shared model to a tenant."""
    client(ctx).post(f"/admin/v1/models/{name}/grants", {"tenant": tenant})
    emit({"model": name, "tenant": tenant, "granted": True}, json_)


@app.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List models with their deployments and grants."""
    emit(client(ctx).get("/admin/v1/models")["data"], json_, COLUMNS, "models")

"""`bulkhead init`: create the store, the bootstrap admin key and the demo models."""

from __future__ import annotations

from typing import Annotated

import typer

from bulkhead.cli.flags import data_dir_option
from bulkhead.cli.output import JsonFlag, emit, secret
from bulkhead.settings import load


def init(
    ctx: typer.Context,
    data_dir: Annotated[str | None, typer.Option(help="Data dir (env BULKHEAD_DATA_DIR).")] = None,
    url: Annotated[
        str, typer.Option(help="URL the CLI profile points at.")
    ] = "http://127.0.0.1:8080",
    json_: JsonFlag = False,
) -> None:
    """Idempotent: prints the platform admin key and the demo tenant's key."""
    from bulkhead.app import initialize  # Only init and serve wire the application.

    settings = load(data_dir=data_dir_option(ctx, data_dir))
    result = initialize(settings, url)
    data = {
        "data_dir": str(settings.data_dir),
        "profile": str(result.profile),
        "created": result.created,
        "admin_key": result.admin_key,
        "demo_tenant": "demo",
        "demo_key": result.demo_key,
    }
    if json_:
        emit(data, True)
        return
    typer.echo(f"{'initialised' if result.created else 'already initialised'}: {settings.data_dir}")
    secret("platform admin key", result.admin_key)
    if result.demo_key:
        secret("demo tenant key", result.demo_key)
    typer.echo(f"CLI profile (0600): {result.profile}")

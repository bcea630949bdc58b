"""What every client command shares: the client from the global options."""

from __future__ import annotations

import typer

from bulkhead.cli.client import Client, resolve_profile


def client(ctx: typer.Context) -> Client:
    root = ctx.find_root().obj or {}
    return Client(resolve_profile(root.get("server"), root.get("key"), root.get("data_dir")))


def data_dir_option(ctx: typer.Context, given: str | None) -> str | None:
    return given or (ctx.find_root().obj or {}).get("data_dir")

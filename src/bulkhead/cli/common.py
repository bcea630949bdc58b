"""What every client command shares: the client from the global options, and which of
its flags an error is about."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import typer

from bulkhead.cli.client import Client, about, field_root, resolve_profile


def client(ctx: typer.Context, **renamed: str) -> Client:
    """The API client for this command; `renamed` maps a request field to the parameter
    that fills it where their names differ (`expires_in_s="expires"`)."""
    root = ctx.find_root().obj or {}
    profile = resolve_profile(root.get("server"), root.get("key"), root.get("data_dir"))
    return Client(profile, fields=given_as(ctx, **renamed))


def given_as(ctx: typer.Context, **renamed: str) -> dict[str, str]:
    """Request field -> how the user gives it: `option --expires` or `argument NAME`."""
    shown = {
        p.name: _shown(p.param_type_name, p.opts, p.name) for p in ctx.command.params if p.name
    }
    fields = {name: text for name, text in shown.items() if name not in renamed.values()}
    fields.update({field: shown[param] for field, param in renamed.items() if param in shown})
    return fields


def _shown(kind: str, opts: Sequence[str], name: str) -> str:
    if kind == "option":
        long = [opt for opt in opts if opt.startswith("--")]
        return f"option {(long or opts)[0]}"
    return f"argument {name.upper()}"


def explain(ctx: typer.Context, message: str, param: str | None, **renamed: str) -> str:
    """A local error about a field, naming the flag it came from."""
    return about(message, param, given_as(ctx, **renamed).get(field_root(param or "")))


def list_page(
    ctx: typer.Context, path: str, limit: int, after: str | None, json_: bool, as_json: bool
) -> Any:
    """One page of an OpenAI-style listing: the whole answer for JSON (`has_more` with it),
    else its rows."""
    query = {k: v for k, v in {"limit": limit, "after": after}.items() if v is not None}
    found = client(ctx).get(f"{path}?{urlencode(query)}")
    return found if json_ or as_json else found["data"]

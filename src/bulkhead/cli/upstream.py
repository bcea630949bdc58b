"""`bulkhead upstream …`: upstream credentials and tenants' upstream allowlists (platform admins).

A secret is read from stdin or a hidden prompt, never from the command line
(where `ps` and shell history would keep it), and never printed.
"""

from __future__ import annotations

import sys
from typing import Annotated
from urllib.parse import quote

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Column, Format, JsonFlag, Output, Rank, emit, fail

app = typer.Typer(no_args_is_help=True, help="Upstream credentials and egress allowlists.")
credential = typer.Typer(
    no_args_is_help=True,
    help="Named upstream credentials (an env var or a KMS-sealed secret), allowed per tenant.",
)
allowlist = typer.Typer(
    no_args_is_help=True,
    help="Where a tenant's model versions may point: host names, '*.' domains, CIDRs.",
)
app.add_typer(credential, name="credential")
app.add_typer(allowlist, name="allowlist")

P = "/admin/v1/upstream-credentials"
COLUMNS = ("name", "source", "env", "tenants", "created_at")
# Each entry is a host or a network an operator checks letter by letter: never cut.
ALLOWLIST_COLUMNS = ("tenant", Column("entries", Rank.KEY))


def _path(name: str) -> str:
    return f"{P}/{quote(name, safe='')}"


def _secret(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Secret", hide_input=True))


@credential.command("add")
def add(
    ctx: typer.Context,
    name: str,
    env: Annotated[
        str | None, typer.Option(help="An environment variable of the gateway holding it.")
    ] = None,
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read the secret from stdin (sealed by the KMS).")
    ] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Register a credential: --env VAR, or a secret (stdin or a hidden prompt)."""
    if env is not None and secret_stdin:
        raise fail("give --env or --secret-stdin, not both", code=2)
    body = {"name": name, "env": env} if env is not None else {"name": name}
    if env is None:
        body["secret"] = _secret(secret_stdin)
    # An error about the secret names the flag that reads it (this is no password).
    api = client(ctx, secret="secret_stdin")  # noqa: S106
    emit(api.post(P, body), json_, COLUMNS, output=output)


@credential.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False, output: Output = Format.TABLE) -> None:
    """List credentials and the tenants allowed each (never a secret)."""
    emit(client(ctx).get(P)["data"], json_, COLUMNS, "upstream credentials", output=output)


@credential.command("show")
def show(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Show one credential (never its secret)."""
    emit(client(ctx).get(_path(name)), json_, COLUMNS, output=output)


@credential.command("delete")
def delete(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Remove a credential that no deployment or live model version uses."""
    client(ctx).request("DELETE", _path(name))
    emit({"name": name, "deleted": True}, json_, output=output)


@credential.command("allow")
def allow(
    ctx: typer.Context,
    name: str,
    tenant: Annotated[str, typer.Option(help="The tenant whose model versions may use it.")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Allow a tenant's model versions to use a credential."""
    client(ctx).post(f"{_path(name)}/grants", {"tenant": tenant})
    emit({"credential": name, "tenant": tenant, "allowed": True}, json_, output=output)


@credential.command("disallow")
def disallow(
    ctx: typer.Context,
    name: str,
    tenant: Annotated[str, typer.Option(help="The tenant to withdraw it from.")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Withdraw a credential from a tenant: its versions stop sending it at once."""
    client(ctx).request("DELETE", f"{_path(name)}/grants/{quote(tenant, safe='')}")
    emit({"credential": name, "tenant": tenant, "allowed": False}, json_, output=output)


def _allowlist_path(tenant: str) -> str:
    return f"/admin/v1/tenants/{quote(tenant, safe='')}/upstream-allowlist"


@allowlist.command("show")
def allowlist_show(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="The tenant.")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Show a tenant's upstream allowlist."""
    emit(client(ctx).get(_allowlist_path(tenant)), json_, ALLOWLIST_COLUMNS, output=output)


@allowlist.command("set")
def allowlist_set(
    ctx: typer.Context,
    entries: Annotated[
        list[str] | None, typer.Argument(help="Host names, '*.' domains or CIDRs.")
    ] = None,
    tenant: Annotated[str, typer.Option(help="The tenant.")] = "",
    clear: Annotated[bool, typer.Option("--clear", help="Remove the allowlist.")] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Replace a tenant's allowlist; a special address needs a CIDR naming it."""
    if not tenant:
        raise fail("give --tenant NAME", code=2)
    if bool(entries) == clear:
        raise fail("give the entries, or --clear to remove the allowlist", code=2)
    body = {"entries": list(entries or [])}
    result = client(ctx).request("PUT", _allowlist_path(tenant), body)
    emit(result, json_, ALLOWLIST_COLUMNS, output=output)

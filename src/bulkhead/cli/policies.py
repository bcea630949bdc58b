"""`bulkhead tenant policies|set-policies|clear-policies`: a tenant's own Cedar policies.

Tenant admins write their policies through the tenant API (`PUT
/tenant/v1/policies`); these commands are the platform's read and repair of
them.  Replacing or deleting them needs an approved, single-use grant:
`bulkhead access request --action admin:policies.update --target TENANT ...`
(or `admin:policies.delete`), approved by a second platform admin.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit, fail, json_wanted, safe

POLICY_COLUMNS = ("tenant", "version", "ids")
MAX_BYTES = 64 * 1024


def show(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Show a tenant's own policies: their ids, version and text."""
    result = client(ctx).get(f"/admin/v1/tenants/{name}/policies")
    emit(result, json_, POLICY_COLUMNS, output=output)
    if not json_wanted(json_, output) and result["policies"]:
        typer.echo(safe(result["policies"], lines=True))  # the tenant's own text


def _read(source: str) -> str:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {source}: {exc}", code=2) from None
    if len(text.encode()) > MAX_BYTES:
        raise fail(f"{source} is over {MAX_BYTES // 1024} KiB, the most a tenant may keep", code=2)
    return text


def set_policies(
    ctx: typer.Context,
    name: str,
    source: Annotated[str, typer.Argument(help="File of Cedar forbids; - reads stdin.")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Replace a tenant's own policies, to repair them (needs a grant)."""
    body = {"policies": _read(source)}
    result = client(ctx).request("PUT", f"/admin/v1/tenants/{name}/policies", body)
    emit(result, json_, POLICY_COLUMNS, output=output)


def clear_policies(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the tenant's forbids go.")] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Delete a tenant's own policies, to repair them (needs a grant)."""
    if not yes:
        raise fail(
            f"Deleting the policies of '{name}' lifts every forbid it wrote; add --yes.", code=2
        )
    client(ctx).request("DELETE", f"/admin/v1/tenants/{name}/policies")
    result = {"tenant": name, "policies_deleted": True}
    emit(result, json_, ("tenant", "policies_deleted"), output=output)

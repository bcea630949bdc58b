"""`bulkhead tenant limits|set-limits` and `bulkhead key set-limits`: rate limits and budgets.

A value is a whole number, `none` for unlimited, or `default` for the tier's
value (tenants only).  A key's limits narrow its tenant's; `none` removes one.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit, fail, json_wanted

Value = Annotated[str | None, typer.Option(help="N, none (unlimited) or default (the tier's).")]
_FLAGS = {
    "rpm": "requests_per_minute",
    "tpm": "tokens_per_minute",
    "concurrency": "concurrency",
    "tokens_per_day": "tokens_per_day",
    "tokens_per_month": "tokens_per_month",
    "max_tokens": "max_tokens_per_request",
    "default_max_tokens": "default_max_tokens",
    "max_body_bytes": "max_body_bytes",
    "weight": "share_weight",
    # Kubernetes compute per namespace (`bulkhead k8s render`): N or default, never none.
    "cpu_millicores": "cpu_millicores",
    "memory_mib": "memory_mib",
    "ephemeral_storage_mib": "ephemeral_storage_mib",
    "pods": "pods",
    "services": "services",
    "secrets": "secrets",
    "pvcs": "pvcs",
    "pvc_storage_mib": "pvc_storage_mib",
    "gpus": "gpus",
    "mig_instances": "mig_instances",
    "fine_tuning_concurrency": "fine_tuning_concurrency",
}
LIMIT_COLUMNS = ("limit", "value", "source", "tier_default")


def parse_value(flag: str, text: str, *, key: bool) -> int | str | None:
    word = text.strip().lower()
    if word in ("none", "unlimited"):
        return None
    if word == "default" and not key:
        return "default"
    if word.isdigit():
        return int(word)
    allowed = "N or none" if key else "N, none or default"
    raise fail(f"--{flag.replace('_', '-')} takes {allowed}, got {text!r}", code=2)


def changes(given: dict[str, str | None], *, key: bool) -> dict[str, Any]:
    out = {
        _FLAGS[flag]: parse_value(flag, text, key=key)
        for flag, text in given.items()
        if text is not None
    }
    if not out:
        raise fail("name at least one limit to change (see --help)", code=2)
    return out


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    limits: dict[str, Any] = result["limits"]
    return [{"limit": name, **shown} for name, shown in limits.items()]


def show(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Show a tenant's limits: its own values and its tier's defaults."""
    result = client(ctx).get(f"/admin/v1/tenants/{name}/limits")
    _show(result, json_, output)


def _show(result: dict[str, Any], json_: bool, output: Format) -> None:
    shown = result if json_wanted(json_, output) else rows(result)
    emit(shown, json_, LIMIT_COLUMNS, "limits", output=output)


def _api_flags() -> dict[str, str]:
    """Each limit's request field -> the flag that sets it (`requests_per_minute` -> rpm)."""
    return {field: flag for flag, field in _FLAGS.items()}


def set_tenant_limits(
    ctx: typer.Context,
    name: str,
    rpm: Value = None,
    tpm: Value = None,
    concurrency: Value = None,
    tokens_per_day: Value = None,
    tokens_per_month: Value = None,
    max_tokens: Value = None,
    default_max_tokens: Value = None,
    max_body_bytes: Value = None,
    weight: Value = None,
    cpu_millicores: Value = None,
    memory_mib: Value = None,
    ephemeral_storage_mib: Value = None,
    pods: Value = None,
    services: Value = None,
    secrets: Value = None,
    pvcs: Value = None,
    pvc_storage_mib: Value = None,
    gpus: Value = None,
    mig_instances: Value = None,
    fine_tuning_concurrency: Value = None,
    fail_open: Annotated[
        bool | None,
        typer.Option(
            "--fail-open/--fail-closed",
            help="While the limiter is down: admit unmetered (alerted, audited) or refuse.",
        ),
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Set a tenant's rate limits, budgets, per-request caps and Kubernetes compute (platform
    admin)."""
    given = {k: v for k, v in locals().items() if k in _FLAGS}
    path = f"/admin/v1/tenants/{name}"
    api = client(ctx, limits_fail_open="fail_open", **_api_flags())
    if fail_open is not None:
        api.request("PATCH", f"{path}/config", {"limits_fail_open": fail_open})
    if any(v is not None for v in given.values()) or fail_open is None:
        result = api.request("PATCH", f"{path}/limits", changes(given, key=False))
    else:
        result = api.get(f"{path}/limits")
    _show(result, json_, output)


def set_key_limits(
    ctx: typer.Context,
    key_id: str,
    tenant: Annotated[
        str | None, typer.Option(help="The key's tenant (platform admin); omit with a tenant key.")
    ] = None,
    rpm: Value = None,
    tpm: Value = None,
    concurrency: Value = None,
    tokens_per_day: Value = None,
    tokens_per_month: Value = None,
    max_tokens: Value = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Narrow one API key's limits (a tenant admin for its own keys, or a platform admin)."""
    given = {k: v for k, v in locals().items() if k in _FLAGS}
    base = f"/admin/v1/tenants/{tenant}" if tenant else "/tenant/v1"
    api = client(ctx, **_api_flags())
    result = api.request("PATCH", f"{base}/keys/{key_id}/limits", changes(given, key=True))
    if json_wanted(json_, output):
        emit(result, True)
        return
    row = {"key_id": result["key_id"], **result["limits"]}
    emit(row, False, tuple(row), output=output)

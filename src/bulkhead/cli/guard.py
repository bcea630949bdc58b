"""`bulkhead tenant guard|set-guard`: a tenant's guard settings (PII, secrets, injection).

Options left out keep their value; finer settings (thresholds, phone
regions, the stream window) go through the API.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit, fail, json_wanted

ACTIONS = ("off", "detect", "mask", "redact", "pseudonymize", "block")
MODES = ("off", "flag", "block")
GUARD_COLUMNS = ("setting", "value", "source")

_ActionOpt = Annotated[str | None, typer.Option(help=" | ".join(ACTIONS))]


def _choice(flag: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    word = value.strip().lower()
    if word not in allowed:
        raise fail(f"--{flag} takes {'|'.join(allowed)}, got {value!r}", code=2)
    return word


def _entities(given: list[str]) -> dict[str, str | None]:
    """`email=mask` pairs; `email=default` removes that entity's own action."""
    out: dict[str, str | None] = {}
    for pair in given:
        name, sep, action = pair.partition("=")
        if not sep or not name.strip():
            raise fail(f"--entity takes ENTITY=ACTION (e.g. email=mask), got {pair!r}", code=2)
        word = action.strip().lower()
        out[name.strip().lower()] = None if word == "default" else _choice("entity", word, ACTIONS)
    return out


def changes(
    *,
    pii: str | None,
    secrets: str | None,
    injection: str | None,
    entity: list[str],
    logprobs: bool | None,
    canary: bool | None,
    allow_host: list[str],
    fine_tuned_logprobs: bool | None = None,
) -> dict[str, Any]:
    """The API body for the options given; refuses an empty change before any request."""
    out: dict[str, Any] = {
        "pii": _choice("pii", pii, ACTIONS),
        "secrets": _choice("secrets", secrets, ACTIONS),
        "injection": _choice("injection", injection, MODES),
        "entities": _entities(entity) or None,
        "allow_logprobs": logprobs,
        "allow_fine_tuned_logprobs": fine_tuned_logprobs,
        "canary": canary,
        "allowed_link_hosts": list(allow_host) or None,
    }
    body = {k: v for k, v in out.items() if v is not None}
    if not body:
        raise fail("name at least one guard setting to change (see --help)", code=2)
    return body


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    chosen = set(result["set"])
    return [
        {"setting": name, "value": value, "source": "tenant" if name in chosen else "default"}
        for name, value in result["guard"].items()
    ]


def _value(value: Any) -> Any:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or None
    return value


def _emit(result: dict[str, Any], json_: bool, output: Format) -> None:
    if json_wanted(json_, output):
        emit(result, True)
        return
    table = [{**row, "value": _value(row["value"])} for row in rows(result)]
    emit(table, False, GUARD_COLUMNS, f"guard: {result['tenant']}", output=output)


def show(
    ctx: typer.Context, name: str, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Show a tenant's guard settings and which of them it set (the rest are defaults)."""
    _emit(client(ctx).get(f"/admin/v1/tenants/{name}/guard"), json_, output)


def set_guard(
    ctx: typer.Context,
    name: str,
    pii: _ActionOpt = None,
    secrets: _ActionOpt = None,
    injection: Annotated[str | None, typer.Option(help=" | ".join(MODES))] = None,
    entity: Annotated[
        list[str] | None,
        typer.Option(help="ENTITY=ACTION for one entity (repeatable); ACTION default resets."),
    ] = None,
    logprobs: Annotated[
        bool | None,
        typer.Option("--allow-logprobs/--no-logprobs", help="Let calls ask for logprobs."),
    ] = None,
    fine_tuned_logprobs: Annotated[
        bool | None,
        typer.Option(
            "--allow-fine-tuned-logprobs/--no-fine-tuned-logprobs",
            help="Logprobs on the tenant's fine-tuned (ft:) models too (with --allow-logprobs).",
        ),
    ] = None,
    canary: Annotated[
        bool | None,
        typer.Option("--canary/--no-canary", help="Put a canary in every system prompt."),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(help="A host images and links may point to (repeatable; replaces the list)."),
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Set a tenant's guard settings (platform admin)."""
    body = changes(
        pii=pii,
        secrets=secrets,
        injection=injection,
        entity=entity or [],
        logprobs=logprobs,
        canary=canary,
        allow_host=allow_host or [],
        fine_tuned_logprobs=fine_tuned_logprobs,
    )
    names = {"allow_logprobs": "logprobs", "allow_fine_tuned_logprobs": "fine_tuned_logprobs"}
    api = client(ctx, entities="entity", allowed_link_hosts="allow_host", **names)
    _emit(api.request("PATCH", f"/admin/v1/tenants/{name}/guard", body), json_, output)

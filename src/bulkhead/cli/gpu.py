"""`bulkhead gpu …`: the server's GPU inventory, and MIG layouts planned right here.

`plan` and `profiles` are pure computation and need no server; `status` asks
the management API.  None of them changes MIG mode or instances: applying a
layout is the operator's step (`nvidia-mig-parted apply`).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from bulkhead.cli.common import client, explain
from bulkhead.cli.output import Format, JsonFlag, Output, emit, fail, json_wanted
from bulkhead.errors import BulkheadError
from bulkhead.runtime.gpu import (
    DEFAULT_CONFIG_NAME,
    GPU_MODELS,
    MigPlan,
    gpu_model,
    mig_parted_config,
    parse_profiles,
    plan,
)

app = typer.Typer(no_args_is_help=True, help="GPUs and NVIDIA MIG layouts.")
_GIB = 1024**3


class PlanFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    MIG_PARTED = "mig-parted"


@app.command("plan")
def plan_layout(
    ctx: typer.Context,
    gpu: Annotated[str, typer.Option(help=f"GPU model: {', '.join(GPU_MODELS)}.")],
    profiles: Annotated[
        str, typer.Option(help="MIG profiles, comma-separated, NAME or NAME:COUNT.")
    ],
    gpus: Annotated[int, typer.Option(help="How many GPUs of that model to spread over.")] = 1,
    format_: Annotated[
        PlanFormat,
        typer.Option("--format", help="table, json (same as --json) or mig-parted (YAML)."),
    ] = PlanFormat.TABLE,
    name: Annotated[
        str, typer.Option(help="The config's name in --format mig-parted output.")
    ] = DEFAULT_CONFIG_NAME,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Find a valid MIG layout for the profiles, or exit 1 saying why none exists."""
    mig_parted = format_ is PlanFormat.MIG_PARTED
    if mig_parted and (json_ or output is not Format.TABLE):
        raise fail("--format mig-parted prints YAML: leave out --json and -o", code=2)
    try:
        found = plan(gpu_model(gpu), parse_profiles(profiles), gpus=gpus)
        text = mig_parted_config(found, name=name) if mig_parted else ""
    except BulkheadError as exc:
        raise fail(explain(ctx, exc.message, exc.param)) from None
    if mig_parted:
        typer.echo(text, nl=False)
    elif format_ is PlanFormat.JSON or json_wanted(json_, output):
        emit(found.to_json(), True)
    else:
        title = f"MIG layout on {found.model.title}"
        emit(_layout_rows(found), False, _LAYOUT_COLUMNS, title, output=output)


_LAYOUT_COLUMNS = ("gpu", "profile", "start", "memory_slices", "compute_slices", "map")


def _layout_rows(found: MigPlan) -> list[dict[str, Any]]:
    rows = []
    for layout in found.layouts:
        for i in layout.instances:
            cells = ["#" if i.start <= s < i.end else "." for s in range(found.model.memory_slices)]
            rows.append(
                {
                    "gpu": layout.gpu,
                    "profile": i.profile,
                    "start": i.start,
                    "memory_slices": i.memory_slices,
                    "compute_slices": i.compute_slices,
                    "map": "".join(cells),
                }
            )
    return rows


@app.command("profiles")
def profiles(
    ctx: typer.Context,
    gpu: Annotated[str | None, typer.Option(help="Only this GPU model.")] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """List the MIG profiles Bulkhead knows for each GPU model, with their placement rules."""
    try:
        models = [gpu_model(gpu)] if gpu else list(GPU_MODELS.values())
    except BulkheadError as exc:
        raise fail(explain(ctx, exc.message, exc.param)) from None
    rows = [
        {
            "gpu": m.key,
            "profile": p.name,
            "memory": p.memory_slices,
            "compute": p.compute_slices,
            "max": p.max_count,
            "starts": list(p.starts),
        }
        for m in models
        for p in m.profiles
    ]
    emit(rows, json_, None, "MIG profiles", output=output)


@app.command("status")
def status(ctx: typer.Context, json_: JsonFlag = False, output: Output = Format.TABLE) -> None:
    """Show the server's GPUs, their MIG mode and instances (read-only)."""
    inventory = client(ctx).get("/admin/v1/gpus")
    if json_wanted(json_, output):
        emit(inventory, True)
        return
    if not inventory["gpus"]:
        typer.echo(f"No GPUs: {inventory['reason']}")
        return
    typer.echo(f"NVIDIA driver {inventory['driver_version']}")
    emit([_gpu_row(g) for g in inventory["gpus"]], False, _GPU_COLUMNS, "GPUs", output=output)
    instances = [row for g in inventory["gpus"] for row in _instance_rows(g)]
    if instances:
        emit(instances, False, _INSTANCE_COLUMNS, "MIG devices", output=output)
    for note in inventory["notes"]:
        typer.echo(f"note: {note}")


_GPU_COLUMNS = ("index", "name", "model", "uuid", "memory", "mig")
_INSTANCE_COLUMNS = ("gpu", "gi", "profile", "placement", "ci", "ci_profile", "uuid")


def _gpu_row(gpu: dict[str, Any]) -> dict[str, Any]:
    used, total = gpu["memory_used"] / _GIB, gpu["memory_total"] / _GIB
    return {
        "index": gpu["index"],
        "name": gpu["name"],
        "model": gpu["model"],
        "uuid": gpu["uuid"],
        "memory": f"{used:.1f}/{total:.1f} GiB",
        "mig": _mig_mode(gpu["mig_current"], gpu["mig_pending"]),
    }


def _mig_mode(current: bool | None, pending: bool | None) -> str:
    if current is None:
        return "unsupported"
    state = "on" if current else "off"
    return state if pending == current else f"{state} (pending {'on' if pending else 'off'})"


def _instance_rows(gpu: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "gpu": gpu["index"],
            "gi": gi["id"],
            "profile": gi["profile"],
            "placement": f"{gi['start']}:{gi['size']}" if gi["start"] is not None else None,
            "ci": ci["id"],
            "ci_profile": ci["profile"],
            "uuid": ci["uuid"],
        }
        for gi in gpu["gpu_instances"]
        for ci in gi["compute_instances"]
    ]

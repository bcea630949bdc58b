"""`bulkhead finetune create|list|show|events|cancel`: the tenant's fine-tuning jobs.

A client of the OpenAI-compatible `/v1/fine_tuning/jobs` with the tenant's
credential (a key or a session, as every command takes it): the tenant is
the credential's, never a flag.  `create --training-file` takes a file id, or
a local JSONL file, which is first uploaded to `/v1/files` with purpose
`fine-tune`.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from bulkhead.cli.client import Client
from bulkhead.cli.common import client, list_page
from bulkhead.cli.output import Format, JsonFlag, Output, emit, fail

app = typer.Typer(no_args_is_help=True, help="Fine-tune a model on your own data (LoRA).")

JOBS = "/v1/fine_tuning/jobs"
JOB_COLUMNS = ("id", "model", "status", "fine_tuned_model", "trained_tokens", "created_at")
EVENT_COLUMNS = ("id", "created_at", "level", "type", "message")
Limit = Annotated[int, typer.Option(help="At most this many (1 to 100).")]
After = Annotated[str | None, typer.Option(help="The page after this id.")]


def _job_path(job_id: str, tail: str = "") -> str:
    return f"{JOBS}/{quote(job_id, safe='')}{tail}"


def upload_jsonl(api: Client, path: Path) -> str:
    """Upload a local JSONL file for fine-tuning; its file id."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}", code=2) from None
    boundary = "bulkhead-" + secrets.token_hex(12)
    name = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    made = api.upload("/v1/files", body, f"multipart/form-data; boundary={boundary}")
    return str(made["id"])


def _file(api: Client, given: str | None) -> str | None:
    if given is None:
        return None
    path = Path(given)
    return upload_jsonl(api, path) if path.is_file() else given


def _hyper(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


@app.command("create")
def create(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="The base model (granted to your tenant).")],
    training_file: Annotated[
        str, typer.Option(help="A file id, or a local chat JSONL file to upload.")
    ],
    validation_file: Annotated[
        str | None, typer.Option(help="A file id, or a local chat JSONL file to upload.")
    ] = None,
    suffix: Annotated[str | None, typer.Option(help="Part of the tuned model's name.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the data.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per step.")] = None,
    learning_rate_multiplier: Annotated[
        float | None, typer.Option(help="Times the base learning rate.")
    ] = None,
    lora_rank: Annotated[int | None, typer.Option(help="The LoRA adapter's rank.")] = None,
    max_seq_len: Annotated[int | None, typer.Option(help="Tokens per example, at most.")] = None,
    seed: Annotated[int | None, typer.Option(help="For a repeatable run.")] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Start a fine-tuning job; the bounds of every hyper-parameter are your tier's."""
    api = client(
        ctx,
        **{"hyperparameters.n_epochs": "epochs", "hyperparameters.epochs": "epochs"},
        **{"bulkhead.lora_rank": "lora_rank", "bulkhead.max_seq_len": "max_seq_len"},
    )
    body: dict[str, Any] = {
        "model": model,
        "training_file": _file(api, training_file),
        "hyperparameters": _hyper(
            n_epochs=epochs,
            batch_size=batch_size,
            learning_rate_multiplier=learning_rate_multiplier,
        ),
        "bulkhead": _hyper(lora_rank=lora_rank, max_seq_len=max_seq_len),
    }
    extra = {"validation_file": _file(api, validation_file), "suffix": suffix, "seed": seed}
    body.update(_hyper(**extra))
    emit(api.post(JOBS, body), json_, JOB_COLUMNS, "fine-tuning job", output=output)


def _page(
    ctx: typer.Context, path: str, limit: int, after: str | None, json_: bool, output: Format
) -> Any:
    return list_page(ctx, path, limit, after, json_, output is Format.JSON)


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Limit = 20,
    after: After = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Your tenant's fine-tuning jobs, newest first."""
    page = _page(ctx, JOBS, limit, after, json_, output)
    emit(page, json_, JOB_COLUMNS, "fine-tuning jobs", output=output)


@app.command("show")
def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id (ftjob-...).")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """One job: its status, hyper-parameters and the tuned model's name once it succeeded."""
    emit(client(ctx).get(_job_path(job_id)), json_, None, "fine-tuning job", output=output)


@app.command("events")
def events(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id (ftjob-...).")],
    limit: Limit = 20,
    after: After = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """A job's events (state changes, losses, checkpoints), newest first."""
    page = _page(ctx, _job_path(job_id, "/events"), limit, after, json_, output)
    emit(page, json_, EVENT_COLUMNS, "events", output=output)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id (ftjob-...).")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Cancel a queued or running job (a running one stops within 5 s)."""
    done = client(ctx).post(_job_path(job_id, "/cancel"))
    emit(done, json_, JOB_COLUMNS, "fine-tuning job", output=output)

"""`bulkhead model …`"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from bulkhead.cli.artifacts import pull
from bulkhead.cli.common import client
from bulkhead.cli.output import (
    Column,
    Format,
    JsonFlag,
    Output,
    Rank,
    emit,
    fail,
    json_wanted,
    safe,
)
from bulkhead.runtime.worker import frames

app = typer.Typer(no_args_is_help=True, help="Manage models and their deployments.")
COLUMNS = (
    "name",
    "shared",
    "owner",
    "kind",
    "upstream",
    "upstream_model",
    "credential",
    "worker",
    "granted_to",
    Column("id", Rank.DETAIL),  # commands name a model by its name; its id is for the record
)


# A file's digest is what an operator compares with its own: it is never cut either.
FILE_COLUMNS = ("name", Column("sha256", Rank.KEY), "bytes")


@app.command("add")
def add(
    ctx: typer.Context,
    name: str,
    upstream: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL (…/v1).")] = None,
    upstream_model: Annotated[str | None, typer.Option(help="Model name upstream.")] = None,
    credential: Annotated[
        str | None, typer.Option(help="A registered upstream credential (`upstream credential`).")
    ] = None,
    worker: Annotated[
        str | None, typer.Option(help="Local worker: smollm2-135m | demo-chat | minilm-embed.")
    ] = None,
    shared: Annotated[bool, typer.Option("--shared", help="Shared; grant it to tenants.")] = False,
    tenant: Annotated[str | None, typer.Option(help="Owner of a private model.")] = None,
    endpoints: Annotated[
        str, typer.Option(help="chat,completions,embeddings")
    ] = "chat,completions",
    timeout: Annotated[float, typer.Option(help="Upstream read timeout in seconds.")] = 60.0,
    engine: Annotated[
        str | None, typer.Option(help="Upstream engine: vllm gets a per-tenant cache_salt.")
    ] = None,
    max_in_flight: Annotated[
        int | None, typer.Option(help="Calls in flight to a shared model, queued fairly.")
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Add a model: exactly one of --shared or --tenant."""
    if shared == (tenant is not None):
        raise fail("give exactly one of --shared or --tenant NAME", code=2)
    body: dict[str, Any] = {
        "name": name,
        "upstream": upstream,
        "upstream_model": upstream_model,
        "credential": credential,
        "worker": worker,
        "tenant": tenant,
        "timeout_s": timeout,
        "endpoints": [e.strip() for e in endpoints.split(",") if e.strip()],
        "engine": engine,
        "max_in_flight": max_in_flight,
    }
    body = {k: v for k, v in body.items() if v is not None}
    emit(
        client(ctx, timeout_s="timeout").post("/admin/v1/models", body),
        json_,
        COLUMNS,
        output=output,
    )


@app.command("grant")
def grant(
    ctx: typer.Context,
    name: str,
    tenant: Annotated[str, typer.Option(help="Tenant to grant the shared model to.")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Grant a shared model to a tenant."""
    client(ctx).post(f"/admin/v1/models/{name}/grants", {"tenant": tenant})
    emit({"model": name, "tenant": tenant, "granted": True}, json_, output=output)


@app.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False, output: Output = Format.TABLE) -> None:
    """List models with their deployments and grants."""
    emit(client(ctx).get("/admin/v1/models")["data"], json_, COLUMNS, "models", output=output)


@app.command("import")
def import_(
    ctx: typer.Context,
    name: str,
    path: Annotated[Path, typer.Argument(help="A Hugging Face-format model directory.")],
    tenant: Annotated[str, typer.Option(help="The tenant that will own the private model.")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Import a model directory (safetensors only) as a tenant's private, encrypted model."""
    files = read_model_directory(path)
    local = {n: hashlib.sha256(data).hexdigest() for n, data in files}
    api = client(ctx)
    api.timeout_s = 900.0
    result = api.upload(
        f"/admin/v1/tenants/{quote(tenant, safe='')}/model-artifacts?model={quote(name, safe='')}",
        b"".join(frames.encode(files)),
        "application/octet-stream",
    )
    del files
    for entry in result["files"]:
        if local.get(entry["name"]) != entry["sha256"]:
            raise fail(f"the server recorded a different SHA-256 for {entry['name']}")
    if json_wanted(json_, output):
        emit(result, True)
        return
    typer.echo(safe(f"Imported {result['model']} for tenant {result['tenant']} ({result['id']})."))
    emit(result["files"], False, FILE_COLUMNS, "files", output=output)


LINKS = (
    "links are never followed: copy the model into a directory of plain files "
    "(e.g. `cp -rL`, or download it with --local-dir)"
)


def read_model_directory(path: Path) -> list[tuple[str, bytes]]:
    """The directory's own regular files (hidden ones skipped), read without following links.

    A model directory may come from someone else: a symbolic link in it could
    name any file this user can read (/etc/shadow, a key), and a hard link
    could be one.  Each entry is opened relative to the directory with
    O_NOFOLLOW and checked to be a regular file with one link after opening,
    so an entry swapped for a link between the listing and the read is refused
    too; anything else is refused by name before a byte is sent.
    """
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise fail(f"{path} is not a directory that can be read ({exc.strerror})", code=2) from None
    try:
        with os.scandir(dir_fd) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith("."))
        return [(name, read_regular_file(dir_fd, name)) for name in names]
    finally:
        os.close(dir_fd)


def read_regular_file(dir_fd: int, name: str) -> bytes:
    """The bytes of `name` in the directory; refuse a link, a device, a pipe or a directory."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise fail(f"{name!r} is a symbolic link; {LINKS}", code=2) from None
        raise fail(f"{name!r} cannot be read ({exc.strerror})", code=2) from None
    with os.fdopen(fd, "rb") as opened:
        info = os.fstat(opened.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise fail(
                f"{name!r} is not a regular file (no sub-directories, devices or pipes)", code=2
            )
        if info.st_nlink != 1:
            raise fail(f"{name!r} has other hard links; {LINKS}", code=2)
        return opened.read()


ATTRIBUTE_COLUMNS = ("model", "tenant", "classification", "sensitivity", "region")


@app.command("attributes")
def attributes(
    ctx: typer.Context,
    name: str,
    classification: Annotated[
        str | None, typer.Option(help="public | internal | confidential | restricted")
    ] = None,
    sensitivity: Annotated[str | None, typer.Option(help="low | medium | high")] = None,
    region: Annotated[str | None, typer.Option(help="Region it is served from.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Owner of a private model.")] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Start from no attributes, not the current ones.")
    ] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Show a model's policy attributes, or change those given (the rest are kept)."""
    path = f"/admin/v1/models/{quote(name, safe='')}/attributes"
    if tenant:
        path += f"?tenant={quote(tenant, safe='')}"
    api = client(ctx)
    if not (classification or sensitivity or region or clear):
        emit(api.get(path), json_, ATTRIBUTE_COLUMNS, output=output)
        return
    body: dict[str, Any] = {} if clear else dict(api.get(path))
    body.pop("model", None)
    body.pop("tenant", None)
    for key, value in (
        ("classification", classification),
        ("sensitivity", sensitivity),
        ("region", region),
    ):
        if value:
            body[key] = value
    body = {k: v for k, v in body.items() if v is not None}
    emit(api.request("PUT", path, body), json_, ATTRIBUTE_COLUMNS, output=output)


app.command("pull")(pull)

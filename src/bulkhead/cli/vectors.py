"""`bulkhead vectors create|list|show|update|delete|add|files|remove|search`: vector stores.

A client of the OpenAI-compatible `/v1/vector_stores` with the tenant's
credential (a key or a session): the tenant is the credential's, never a
flag.  `create --file` and `add` take file ids, or local text files, which
are first uploaded to `/v1/files` with purpose `assistants`.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from bulkhead.cli.client import Client
from bulkhead.cli.common import client, list_page
from bulkhead.cli.output import Format, JsonFlag, Output, emit, fail

app = typer.Typer(no_args_is_help=True, help="Vector stores for retrieval (RAG), in your tenant.")

STORES = "/v1/vector_stores"
STORE_COLUMNS = ("id", "name", "status", "usage_bytes", "embedding_model", "created_at")
FILE_COLUMNS = ("id", "status", "usage_bytes", "last_error", "created_at")
HIT_COLUMNS = ("file_id", "filename", "score", "text")
StoreId = Annotated[str, typer.Argument(help="The store's id (vs_...).")]
Limit = Annotated[int, typer.Option(help="At most this many (1 to 100).")]
After = Annotated[str | None, typer.Option(help="The page after this id.")]
Pairs = Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")]
WAIT_S = 120.0


def _path(store_id: str, tail: str = "") -> str:
    return f"{STORES}/{quote(store_id, safe='')}{tail}"


def _pairs(given: list[str] | None, what: str) -> dict[str, str] | None:
    if not given:
        return None
    found = {}
    for pair in given:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"{what} must be KEY=VALUE, not {pair!r}", code=2)
        found[key] = value
    return found


def upload_text(api: Client, path: Path) -> str:
    """Upload a local file for a vector store (purpose `assistants`); its file id."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}", code=2) from None
    boundary = "bulkhead-" + secrets.token_hex(12)
    name = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return str(api.upload("/v1/files", body, f"multipart/form-data; boundary={boundary}")["id"])


def _file(api: Client, given: str) -> str:
    path = Path(given)
    return upload_text(api, path) if path.is_file() else given


def _chunking(size: int | None, overlap: int | None) -> dict[str, Any] | None:
    if size is None and overlap is None:
        return None
    static = {"max_chunk_size_tokens": size or 800, "chunk_overlap_tokens": overlap or 0}
    return {"type": "static", "static": static}


ChunkSize = Annotated[int | None, typer.Option(help="Tokens per chunk (100 to 4096).")]
Overlap = Annotated[int | None, typer.Option(help="Tokens shared by neighbours (<= half).")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="The store's name.")] = "",
    model: Annotated[
        str | None, typer.Option(help="The embedding model (default: the bundled MiniLM).")
    ] = None,
    file: Annotated[list[str] | None, typer.Option(help="A file id or local file; repeat.")] = None,
    chunk_size: ChunkSize = None,
    chunk_overlap: Overlap = None,
    metadata: Pairs = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Create a store (and start adding files to it)."""
    api = client(ctx, embedding_model="model", file_ids="file", chunking_strategy="chunk_size")
    body: dict[str, Any] = {"name": name, "file_ids": [_file(api, f) for f in file or []]}
    extra = {
        "embedding_model": model,
        "chunking_strategy": _chunking(chunk_size, chunk_overlap),
        "metadata": _pairs(metadata, "--metadata"),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    emit(api.post(STORES, body), json_, STORE_COLUMNS, "vector store", output=output)


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
    """Your tenant's vector stores, newest first."""
    page = _page(ctx, STORES, limit, after, json_, output)
    emit(page, json_, STORE_COLUMNS, "vector stores", output=output)


@app.command("show")
def show(
    ctx: typer.Context, store_id: StoreId, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """One store: its model, file counts and size."""
    emit(client(ctx).get(_path(store_id)), json_, None, "vector store", output=output)


@app.command("update")
def update(
    ctx: typer.Context,
    store_id: StoreId,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    metadata: Pairs = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Rename a store or replace its metadata."""
    body = {"name": name, "metadata": _pairs(metadata, "--metadata")}
    done = client(ctx).post(_path(store_id), {k: v for k, v in body.items() if v is not None})
    emit(done, json_, STORE_COLUMNS, "vector store", output=output)


@app.command("delete")
def delete(
    ctx: typer.Context, store_id: StoreId, json_: JsonFlag = False, output: Output = Format.TABLE
) -> None:
    """Delete a store and every chunk in it (the files themselves stay)."""
    done = client(ctx).request("DELETE", _path(store_id))
    emit(done, json_, ("id", "deleted"), "vector store", output=output)


@app.command("add")
def add(
    ctx: typer.Context,
    store_id: StoreId,
    file: Annotated[str, typer.Argument(help="A file id, or a local text file to upload.")],
    attribute: Pairs = None,
    chunk_size: ChunkSize = None,
    chunk_overlap: Overlap = None,
    wait: Annotated[bool, typer.Option(help="Wait until it is completed or failed.")] = False,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Add a file to a store: it is chunked and embedded in the background."""
    api = client(ctx, chunking_strategy="chunk_size", attributes="attribute")
    body: dict[str, Any] = {"file_id": _file(api, file)}
    extra = {
        "attributes": _pairs(attribute, "--attribute"),
        "chunking_strategy": _chunking(chunk_size, chunk_overlap),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    done = api.post(_path(store_id, "/files"), body)
    deadline = time.monotonic() + WAIT_S
    while wait and done["status"] == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.5)
        done = api.get(_path(store_id, f"/files/{quote(done['id'], safe='')}"))
    emit(done, json_, FILE_COLUMNS, "vector store file", output=output)


@app.command("files")
def files(
    ctx: typer.Context,
    store_id: StoreId,
    limit: Limit = 20,
    after: After = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """The files of a store and how far each got."""
    page = _page(ctx, _path(store_id, "/files"), limit, after, json_, output)
    emit(page, json_, FILE_COLUMNS, "vector store files", output=output)


@app.command("remove")
def remove(
    ctx: typer.Context,
    store_id: StoreId,
    file_id: Annotated[str, typer.Argument(help="The file's id (file-...).")],
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Remove a file's chunks from a store (the file itself stays)."""
    done = client(ctx).request("DELETE", _path(store_id, f"/files/{quote(file_id, safe='')}"))
    emit(done, json_, ("id", "deleted"), "vector store file", output=output)


@app.command("search")
def search(
    ctx: typer.Context,
    store_id: StoreId,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    max_results: Annotated[int, typer.Option(help="1 to 50.")] = 10,
    threshold: Annotated[float, typer.Option(help="The least score (0 to 1).")] = 0.0,
    filter_: Annotated[
        str | None, typer.Option("--filter", help="OpenAI's filter object, as JSON.")
    ] = None,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """The chunks nearest to the query, best first."""
    api = client(ctx, max_num_results="max_results", ranking_options="threshold", filters="filter_")
    body: dict[str, Any] = {
        "query": query,
        "max_num_results": max_results,
        "ranking_options": {"score_threshold": threshold},
    }
    if filter_ is not None:
        try:
            body["filters"] = json.loads(filter_)
        except ValueError:
            raise fail("--filter must be JSON", code=2) from None
    found = api.post(_path(store_id, "/search"), body)
    if json_ or output is Format.JSON:
        emit(found, json_, None, "search results", output=output)
        return
    rows = [{**hit, "text": hit["content"][0]["text"][:80]} for hit in found["data"]]
    emit(rows, json_, HIT_COLUMNS, "search results", output=output)

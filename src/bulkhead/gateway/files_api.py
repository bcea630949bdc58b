"""Step 7 for files: the OpenAI-compatible `/v1/files` endpoints, always in the caller's tenant.

Uploads are `multipart/form-data` with a `file` part and a `purpose` field,
as the OpenAI API takes them; the body is parsed by the bounded, linear
parser of `web.multipart` (a large one on a worker thread).  Downloads are
`application/octet-stream` sent as an attachment: with `nosniff` on every
response (`gateway.headers`), a browser never renders a tenant's file.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from urllib.parse import parse_qsl

import orjson

from bulkhead.domain import Tenant
from bulkhead.errors import InvalidRequest, NotFound
from bulkhead.gateway.endpoints import endpoint_of
from bulkhead.gateway.offload import Offload, job_owner
from bulkhead.store.files import FileService
from bulkhead.web import multipart
from bulkhead.web.responses import send_bytes, send_json
from bulkhead.web.scope import (
    Receive,
    Scope,
    Send,
    context,
    exchange,
    header,
    note_action,
    raw_body,
)

_DOWNLOAD = [
    (b"content-type", b"application/octet-stream"),
    (b"content-disposition", b"attachment"),
]


def parse_upload(content_type: bytes | None, body: bytes) -> tuple[str, str, bytes]:
    """(filename, purpose, data) of an OpenAI file upload."""
    found: dict[str, multipart.Part] = {}
    for part in multipart.parse(content_type, body):
        if part.name in found and part.name in ("file", "purpose"):
            raise InvalidRequest(f"The '{part.name}' part occurs more than once.", param=part.name)
        if part.filename is not None and part.name != "file":
            raise InvalidRequest("Only the 'file' part may carry a file.", param=part.name)
        found[part.name] = part
    if "file" not in found:
        raise InvalidRequest("Missing the 'file' part.", param="file")
    if "purpose" not in found:
        raise InvalidRequest("Missing the 'purpose' field.", param="purpose")
    try:
        purpose = found["purpose"].data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("'purpose' must be UTF-8 text.", param="purpose") from None
    return safe_filename(found["file"].filename or ""), purpose.strip(), found["file"].data


MAX_FILENAME_BYTES = 255


def safe_filename(name: str) -> str:
    """What is kept of a client's file name: its last path component (`/` or `\\`), without
    control or format characters (line breaks, bidi overrides), at most 255 bytes of UTF-8,
    never `.` or `..`; "upload" when nothing is left."""
    last = re.split(r"[\\/]", name)[-1]
    kept = "".join(ch for ch in last if unicodedata.category(ch)[0] != "C").strip()
    kept = kept.encode()[:MAX_FILENAME_BYTES].decode(errors="ignore")
    return kept if kept.strip(".") else "upload"


class FilesEndpoints:
    def __init__(self, *, files: FileService, offload: Offload | None = None):
        self.files = files
        self.offload = offload or Offload()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant = context(scope).tenant
        if tenant is None:  # pragma: no cover - authorize admits tenant credentials only
            raise NotFound("not found")
        endpoint = endpoint_of(scope)
        if endpoint is None:  # pragma: no cover - authorize rejects other paths
            raise NotFound("not found")
        if endpoint.action == "v1:files.create":
            await self.upload(scope, send, tenant)
        elif endpoint.action == "v1:files.list":
            await self.list(scope, send, tenant)
        else:
            file_id = endpoint.params(scope["path"])["file_id"]
            await self.one(scope, send, tenant, file_id, endpoint.action)

    async def list(self, scope: Scope, send: Send, tenant: Tenant) -> None:
        query = _query(scope.get("query_string", b""))
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
        try:
            limit = int(query.get("limit", "10000"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 10_000:
            raise InvalidRequest("'limit' must be an integer from 1 to 10000.", param="limit")
        page, more = await asyncio.to_thread(
            self.files.list,
            tenant.id,
            after=query.get("after") or None,
            limit=limit,
            descending=order == "desc",
            purpose=query.get("purpose") or None,
        )
        data = [f.openai() for f in page]
        await send_json(
            send,
            200,
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": more,
            },
        )

    async def upload(self, scope: Scope, send: Send, tenant: Tenant) -> None:
        body = raw_body(scope)
        filename, purpose, data = await self.offload.run(
            job_owner(scope), len(body), parse_upload, header(scope, b"content-type"), body
        )
        info = await asyncio.to_thread(self.files.upload, tenant, filename, purpose, data)
        note_action(scope, "v1:files.create", info.id)
        await send_json(send, 200, info.openai())

    async def one(
        self, scope: Scope, send: Send, tenant: Tenant, file_id: str, action: str
    ) -> None:
        exchange(scope).names(resource=file_id)
        if action == "v1:files.content":
            data = await asyncio.to_thread(self.files.content, tenant.id, file_id)
            await send_bytes(send, 200, data, _DOWNLOAD)
        elif action == "v1:files.delete":
            await asyncio.to_thread(self.files.delete, tenant.id, file_id)
            await send_bytes(
                send, 200, orjson.dumps({"id": file_id, "object": "file", "deleted": True})
            )
        else:
            info = await asyncio.to_thread(self.files.get, tenant.id, file_id)
            await send_json(send, 200, info.openai())


def _query(raw: bytes) -> dict[str, str]:
    """The query string's fields: UTF-8, percent-escapes included, or a 400 naming it."""
    try:
        return dict(parse_qsl(raw.decode("utf-8"), errors="strict", max_num_fields=16))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest(
            "The query string must be UTF-8 with at most 16 fields.", param="query"
        ) from None

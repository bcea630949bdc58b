"""Vector stores at work: ingesting an attached file and answering a search.

Ingestion runs after the attach call has answered (`in_progress`): the file
is read (decrypted) in the caller's tenant, split (`vectors.chunking`),
embedded through the caller's own path (`vectors.embed`), and sealed in
segments (`store.vectors.VectorStores.complete`); any refusal on the way
leaves the file `failed` with OpenAI's `last_error` codes.  A search embeds
its query the same way, with the store's model: a store never compares
vectors of two models.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bulkhead.domain import Tenant
from bulkhead.errors import BulkheadError, Conflict, RateLimited
from bulkhead.limits.pool import WorkPool
from bulkhead.store.files import FileService
from bulkhead.store.vector_info import FileLink, StoreInfo
from bulkhead.store.vectors import HEARTBEAT_S, VectorStores
from bulkhead.vectors.chunking import Chunking, fits_for, split
from bulkhead.vectors.fair import FairPool
from bulkhead.vectors.filters import Filter
from bulkhead.vectors.request import Search
from bulkhead.web.scope import NESTED, Scope

if TYPE_CHECKING:
    from bulkhead.vectors.index import Matrix

log = logging.getLogger("bulkhead.vectors")
Embed = Callable[[Scope, str, list[str]], Awaitable["Matrix"]]
MAX_CHUNKS = 200_000  # per file
# Files of one tenant read, split and embedded at once: the others wait their turn (each
# holds its whole text and tokens in memory, hundreds of MB for a large file).
INGEST_PER_TENANT = 2


class VectorService:
    def __init__(self, stores: VectorStores, files: FileService, embed: Embed, *, loads: int = 2):
        """`loads`: threads of the pools that load cold stores and do ingestion's heavy steps."""
        self.stores, self.files, self.embed = stores, files, embed
        # Heavy work on threads of its own, never on asyncio's default executor (which
        # OIDC sign-in and the control plane share): a cold load may build a graph for
        # minutes.  Cold loads beyond the queue are refused at once (429 `vector_store_busy`);
        # ingestion is bounded per tenant (`INGEST_PER_TENANT`) and waits, its steps taking
        # the threads in turns fair between tenants (`vectors.fair`).
        self.loader = WorkPool("vector-load", workers=loads, queue=32, code="vector_store_busy")
        self.heavy = FairPool(loads, "vector-ingest")
        self.heartbeat_s: float = HEARTBEAT_S
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns: dict[str, tuple[asyncio.Semaphore, int]] = {}
        # The (tenant, store, file) links this replica is ingesting or about to: their
        # heartbeat tells the other replicas' sweep (`VectorStores.fail_stalled`) they live.
        self._ingesting: dict[tuple[str, str, str], int] = {}
        self._beater: asyncio.Task[None] | None = None

    def ingest_later(
        self, origin: Scope, tenant: Tenant, store: StoreInfo, link: FileLink, chunking: Chunking
    ) -> None:
        task = asyncio.create_task(self.ingest(origin, tenant, store, link.file_id, chunking))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for every ingestion under way (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def ingest(
        self, origin: Scope, tenant: Tenant, store: StoreInfo, file_id: str, chunking: Chunking
    ) -> None:
        gate, waiting = self._turns.get(tenant.id) or (asyncio.Semaphore(INGEST_PER_TENANT), 0)
        self._turns[tenant.id] = (gate, waiting + 1)
        link = (tenant.id, store.id, file_id)
        self._ingesting[link] = self._ingesting.get(link, 0) + 1
        if self._beater is None or self._beater.done():
            self._beater = asyncio.create_task(self._beat())
        try:
            async with gate:
                with self.heavy.working(tenant.id):
                    await self._ingest_one(origin, tenant, store, file_id, chunking)
        finally:
            if self._ingesting[link] == 1:
                del self._ingesting[link]
            else:
                self._ingesting[link] -= 1
            gate, waiting = self._turns[tenant.id]
            if waiting == 1:
                del self._turns[tenant.id]
            else:
                self._turns[tenant.id] = (gate, waiting - 1)

    async def _beat(self) -> None:
        """Every `HEARTBEAT_S` while any file is being ingested here: say so, per tenant."""
        while self._ingesting:
            await asyncio.sleep(self.heartbeat_s)
            by_tenant: dict[str, list[tuple[str, str]]] = {}
            for tenant_id, store_id, file_id in list(self._ingesting):
                by_tenant.setdefault(tenant_id, []).append((store_id, file_id))
            for tenant_id, links in by_tenant.items():
                try:
                    await asyncio.to_thread(self.stores.heartbeat, tenant_id, links)
                except Exception:  # a database hiccup: the next beat tries again
                    log.warning("a vector store ingestion heartbeat failed")

    async def _ingest_one(
        self, origin: Scope, tenant: Tenant, store: StoreInfo, file_id: str, chunking: Chunking
    ) -> None:
        try:
            code, message = await self._ingest(origin, tenant, store, file_id, chunking)
        except RateLimited as exc:
            code, message = "rate_limit_exceeded", exc.message
        except BulkheadError as exc:
            code, message = "server_error", exc.message
        except Exception:  # never a silent task death: the file says it failed
            log.exception("ingesting a file into a vector store failed")
            code, message = "server_error", "The file could not be processed."
        if code is not None:
            await asyncio.to_thread(self.stores.fail, tenant.id, store.id, file_id, code, message)

    async def _ingest(
        self, origin: Scope, tenant: Tenant, store: StoreInfo, file_id: str, chunking: Chunking
    ) -> tuple[str | None, str]:
        turn = tenant.id  # each heavy step waits for its tenant's turn (`vectors.fair`)
        data = await self.heavy.run(turn, self.files.content, tenant.id, file_id)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return "unsupported_file", "Only UTF-8 text files can be added to a vector store."
        fits = fits_for(store.model)  # every chunk read whole by the store's model
        chunks = await self.heavy.run(turn, split, text, chunking, fits)
        if not chunks:
            return "invalid_file", "The file has no text."
        if len(chunks) > MAX_CHUNKS:
            return "invalid_file", f"The file makes more than {MAX_CHUNKS} chunks."
        vectors = await self.embed(origin, store.model, chunks)
        await self.heavy.run(turn, self.stores.complete, tenant, store.id, file_id, chunks, vectors)
        return None, ""

    async def search(self, origin: Scope, tenant: Tenant, store_id: str, ask: Search) -> Any:
        store, cached = await asyncio.to_thread(self.stores.lookup, tenant.id, store_id)
        if cached is None:  # cold: decrypted (and maybe built) on the load pool
            store, index = await self.loader.run(self.stores.index, tenant.id, store_id)
        else:
            index = cached
        if not index.chunks:
            return _page(ask, [])
        # Inside this search's own admitted call: the embedding takes no second slot.
        nested = {**origin, NESTED: True}
        query = await self.embed(nested, store.model, [" ".join(ask.queries)])
        if query.shape[1] != index.dimensions:
            raise Conflict(
                "The query was embedded with other dimensions than the store's.",
                code="dimensions_mismatch",
            )
        allowed = None
        if ask.filters is not None:  # every file's attributes tested, off the event loop
            keep = await asyncio.to_thread(self._matching, tenant.id, store_id, ask.filters)
            allowed = keep.__contains__
        found = await asyncio.to_thread(index.search, query[0], ask.max_results, allowed)
        hits = [(row, score) for row, score in found if score >= ask.threshold]
        file_ids = sorted({index.chunks[row].file_id for row, _ in hits})
        names = await asyncio.to_thread(self.stores.filenames, tenant.id, file_ids)
        attributes = await asyncio.to_thread(self.stores.attributes, tenant.id, store_id)
        data = [
            {
                "file_id": index.chunks[row].file_id,
                "filename": names.get(index.chunks[row].file_id, ""),
                "score": min(max(float(score), 0.0), 1.0),
                "attributes": attributes.get(index.chunks[row].file_id, {}),
                "content": [{"type": "text", "text": index.chunks[row].text}],
            }
            for row, score in hits
        ]
        return _page(ask, data)

    def _matching(self, tenant_id: str, store_id: str, test: Filter) -> frozenset[str]:
        attributes = self.stores.attributes(tenant_id, store_id)
        return frozenset(f for f, attrs in attributes.items() if test(attrs))


def _page(ask: Search, data: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "vector_store.search_results.page",
        "search_query": list(ask.queries),
        "data": data,
        "has_more": False,
        "next_page": None,
    }

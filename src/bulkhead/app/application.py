"""The application's lifecycle: the ASGI entry point, start-up, background loops, shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Sequence

from bulkhead.app.jobs import Maintenance
from bulkhead.app.keys import PlatformKeys
from bulkhead.app.specs import local_specs
from bulkhead.app.training import ClosingRunner
from bulkhead.audit.log import AuditLog
from bulkhead.audit.sequencer import Sequencer
from bulkhead.finetune.service import FineTuning
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.idp_fetch import IdpFetcher
from bulkhead.limits import LimitAdmission, Limiter, O200kCounter
from bulkhead.limits.fairshare import SharedCapacity
from bulkhead.limits.pool import WorkPool
from bulkhead.observe import Metrics
from bulkhead.runtime import UpstreamClient, WorkerSupervisor
from bulkhead.runtime.gpu import Device
from bulkhead.runtime.traced import TracedUpstreamClient
from bulkhead.settings import Settings
from bulkhead.store import Catalog, Database
from bulkhead.store.artifacts import ArtifactService
from bulkhead.store.listen import CatalogListener, psycopg_connector
from bulkhead.store.session_keys import SessionKeyring
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send

log = logging.getLogger("bulkhead")

# Young collections less often than Python's default (docs/benchmarks.md: c=64 from 2,523
# to 3,404 req/s, p99 from 94 to 26 ms).  Each holds the event loop while it runs, so
# nothing a request leaves behind may need one: an answered error's traceback is cleared
# (`gateway.errors`), or a refused body held in a cycle stalls the loop for tens of ms.
GC_THRESHOLDS = (50_000, 20, 100)


class Application:
    """The ASGI application: the gateway chain plus its start-up and shut-down."""

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database,
        chain: ASGIApp,
        catalog: Catalog,
        workers: WorkerSupervisor,
        upstreams: UpstreamClient,
        audit: AuditLog,
        sequencer: Sequencer,
        metrics: Metrics,
        maintenance: Maintenance,
        artifacts: ArtifactService | None = None,
        ca: InternalCA | None = None,
        admission: LimitAdmission | None = None,
        gpus: Sequence[Device] = (),
        pools: Sequence[WorkPool] = (),
        backends: tuple[Limiter, SharedCapacity] | None = None,
        session_keys: SessionKeyring | None = None,
        platform_keys: PlatformKeys | None = None,
        fine_tuning: FineTuning | None = None,
        idp: IdpFetcher | None = None,
    ):
        self.settings = settings
        self.idp = idp  # bound to the event loop at start-up: token validation fetches on it
        self.fine_tuning = fine_tuning  # its queue starts and stops with the application
        self.fine_tuning_runner: ClosingRunner | None = None  # made by `build`: closed here
        self.session_keys, self.platform_keys = session_keys, platform_keys
        self.pools = tuple(pools)
        self.backends = backends  # the limiter and the shared capacity: closed at shut-down
        self.admission = admission
        # The GPUs and MIG devices found at start-up, which workers are pinned to.
        self.gpus = tuple(gpus)
        self.artifacts = artifacts
        self.ca = ca
        self.maintenance = maintenance
        self._maintainer: asyncio.Task[None] | None = None
        self.db, self.chain, self.catalog = db, chain, catalog
        self.workers, self.upstreams, self.audit, self.metrics = workers, upstreams, audit, metrics
        self.sequencer = sequencer
        self._poller: asyncio.Task[None] | None = None
        self._synced = 0  # the catalog version the workers were last synced to
        self.listener: CatalogListener | None = None  # PostgreSQL's push, when on it
        self._changed = asyncio.Event()  # set (from the listener's thread) on a change

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self.chain(scope, receive, send)
        else:  # a websocket: the chain's layers guard HTTP requests only, so none is served
            raise RuntimeError(f"unsupported ASGI scope type {scope['type']!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        # Everything built so far lives as long as the process: move it out of the
        # collector's sight, so that full collections over start-up objects stop pausing
        # requests; then keep each collection short (`GC_THRESHOLDS`).  `bulkhead serve`
        # imports and builds with the collector off (`cli.main`): it is turned on here,
        # without a collection first: its garbage is some 1,800 objects the imports left
        # in cycles, frozen for good, where a full collection over the 120,000 objects
        # made would cost 0.05-0.1 s of the start-up (docs/benchmarks.md, session 16).  A
        # process that collected all along (tests, an embedding) is collected first: its
        # garbage may be a whole earlier application.
        if gc.isenabled():
            gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        gc.enable()
        if self.admission is not None and isinstance(self.admission.counter, O200kCounter):
            # A damaged vocabulary stops the start-up (fail closed).  The encoder itself
            # (0.2-0.3 s) is built on this thread right after the first answer
            # (`gateway/admit.py`), which is admitted against an upper bound of its count.
            self.admission.counter.check()
        if self.idp is not None:  # before the first request: a JWKS fetch runs on this loop
            self.idp.bind(asyncio.get_running_loop())
        self._synced = self.catalog.snapshot.version
        if self.settings.start_workers:
            self.workers.sync(local_specs(self.catalog.snapshot, self.artifacts, self.gpus))
        self._listen(asyncio.get_running_loop())
        self._poller = asyncio.get_running_loop().create_task(self._poll())
        if self.settings.maintenance_interval_s > 0:
            self._maintainer = asyncio.get_running_loop().create_task(self._maintain())
        if self.fine_tuning is not None:  # take part in the replicas' shared queue
            await self.fine_tuning.resume()

    async def _maintain(self) -> None:
        """Key rotation and retention purge, on a timer, off the event loop."""
        while True:
            try:
                await asyncio.to_thread(self.maintenance.run_once)
            except Exception as exc:  # A failing KMS or database: alert and try again later.
                log.error("maintenance failed: %s", type(exc).__name__)
            await asyncio.sleep(self.settings.maintenance_interval_s)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Arm the catalog's freshness bound; on PostgreSQL, start hearing its NOTIFY."""
        bound = self.settings.catalog_max_stale_s
        self.catalog.watch(bound)
        self.metrics.watch_catalog(
            self.catalog.unconfirmed_s, lambda: self.listener is not None and self.listener.healthy
        )
        if self.db.dialect != "postgresql":
            return  # SQLite: one host, polling only

        def changed(version: int | None) -> None:
            if version is None or version > self.catalog.snapshot.version:
                with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                    loop.call_soon_threadsafe(self._changed.set)

        # The ping also confirms freshness: often enough that a tight bound holds.
        ping = min(1.0, bound / 4) if bound > 0 else 1.0
        self.listener = CatalogListener(
            psycopg_connector(self.db.url),
            on_change=changed,
            on_confirmed=self.catalog.confirm,
            ping_s=max(0.05, ping),
        ).start()

    async def _poll(self) -> None:
        """Reload on a change another replica made: heard (PostgreSQL), else polled.

        On SQLite a look at which nothing was committed is a few µs on this thread
        (`Catalog.confirm_if_unchanged`): no worker thread, no transaction."""
        while True:
            if self.listener is None:
                await asyncio.sleep(self.settings.catalog_poll_s)
            else:
                healthy = self.listener.healthy
                every = (
                    self.settings.catalog_push_poll_s if healthy else self.settings.catalog_poll_s
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), every)
                self._changed.clear()
            if (
                self._synced == self.catalog.snapshot.version
                and self.catalog.confirm_if_unchanged()
            ):
                continue
            try:
                changed = await asyncio.to_thread(self.catalog.refresh_if_changed)
            except Exception as exc:  # The database may be briefly away; keep serving.
                log.warning("catalog refresh failed: %s", type(exc).__name__)
                continue
            # A change made through this replica's own API reloaded the catalog already
            # (so `changed` is False), but its workers still have to follow it.
            synced, self._synced = self._synced, self.catalog.snapshot.version
            if (changed or synced != self._synced) and self.settings.start_workers:
                self.workers.sync(local_specs(self.catalog.snapshot, self.artifacts, self.gpus))

    async def shutdown(self) -> None:
        for task in (self._poller, self._maintainer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop)
        if self.fine_tuning is not None:
            await self.fine_tuning.close()
        if self.fine_tuning_runner is not None:
            await self.fine_tuning_runner.close()
        await self.upstreams.close()
        await self.workers.close()
        if self.backends is not None:
            limiter, capacity = self.backends
            await capacity.aclose()
            await asyncio.to_thread(limiter.close)
        for pool in self.pools:
            pool.close()
        self.maintenance.retention.close()
        self.audit.close()
        self.sequencer.close()
        self.db.dispose()
        if isinstance(self.upstreams, TracedUpstreamClient):
            await self.upstreams.stop_tracing()  # last: never before the audit log's commit

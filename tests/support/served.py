"""`bulkhead serve` as a real process, and a client load that notes what it was answered.

`ServedPlatform` sets a platform up through an in-process gateway (a tenant,
models on the fake upstream, a key), stops it, and then runs `bulkhead serve`
processes on the same data dir and database, which a test may kill, restart
and stop.  `Load` drives calls at it from an asyncio loop in a thread and
keeps the request id of every call whose whole answer arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bulkhead.audit.bundle import verify_bundle
from bulkhead.audit.checkpoint import Verifier
from bulkhead.audit.export import build_bundle
from bulkhead.settings import load
from bulkhead.store import Database
from tests.support.gateway import GatewayThread, UpstreamThread
from tests.support.postgres import free_port

BULKHEAD = str(Path(sys.executable).parent / "bulkhead")


class ServedPlatform:
    """A data dir and database with a tenant's key and models; `bulkhead serve` on them."""

    def __init__(
        self, tmp: Path, url: str | None, admin: str | None, upstream: UpstreamThread
    ) -> None:
        self.tmp, self.data = tmp, tmp / "data"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")}
        self.env |= {"BULKHEAD_START_WORKERS": "0", "BULKHEAD_MAINTENANCE_INTERVAL_S": "0"}
        if url:
            self.env["BULKHEAD_DATABASE_URL"] = url
        if admin:
            self.env["BULKHEAD_DATABASE_ADMIN_URL"] = admin
        gateway = GatewayThread(self.data, url, admin_url=admin).start()
        try:
            # The demo tenant, whose limits the gateway lifted: durability is measured
            # here, not the tier's rate limits.
            gateway.model("fast", upstream.url, grant=("demo",), upstream_model="fake")
            gateway.model("slow-m", upstream.url, grant=("demo",), upstream_model="fake")
            self.key = gateway.demo_key
            self.settings = gateway.settings
        finally:
            gateway.stop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def serve(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = (self.tmp / f"serve{self.starts}.log").open("wb")
        args = [BULKHEAD, "--data-dir", str(self.data), "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*args, "--metrics-port", "0"], stdout=log, stderr=subprocess.STDOUT, env=self.env
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return self.process
            except OSError:
                time.sleep(0.1)
        raise AssertionError("bulkhead serve did not become healthy: " + self.log())

    def log(self) -> str:
        return (self.tmp / f"serve{self.starts}.log").read_text(errors="replace")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def database(self) -> Database:
        return Database(load(data_dir=self.data, env=self.env).database_url)

    def verified_entries(self) -> list[dict[str, Any]]:
        """The log exported and verified against its own signed checkpoints."""
        db = self.database()
        try:
            bundle = build_bundle(db, self.settings.audit_origin)
        finally:
            db.dispose()
        verify_bundle(bundle, [Verifier.from_vkey(v) for v in bundle["verifiers"]])
        return [json.loads(e["body"]) for e in bundle["entries"]]


@dataclass
class Load:
    """Calls at `url` from `clients` concurrent tasks until stopped; what came back."""

    url: str
    key: str
    clients: int = 16
    keep_alive: bool = False  # reuse connections, as a load balancer's upstream pool does
    answered: set[str] = field(default_factory=set)  # ids of whole answers, any status
    statuses: dict[int, int] = field(default_factory=dict)
    refused: int = 0  # no connection: never sent, so a load balancer tries another replica
    broken: list[str] = field(default_factory=list)  # an answer that began and did not end
    cut: list[str] = field(default_factory=list)  # streams ended by an error event
    succeeded_at: list[float] = field(default_factory=list)  # monotonic times of 200 answers
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Load:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)
        return self

    async def _run(self) -> None:
        # Without keep-alive, one connection per call: a kill -9 then cuts only calls in
        # flight, never a call about to be sent down an idle connection.
        connector = aiohttp.TCPConnector(force_close=not self.keep_alive, limit=0)
        headers = {"authorization": f"Bearer {self.key}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            await asyncio.gather(*(self._client(session, n) for n in range(self.clients)))

    async def _client(self, session: aiohttp.ClientSession, n: int) -> None:
        count = 0
        while not self._stop.is_set():
            count += 1
            stream = count % 8 == 0
            body = {
                "model": "fast",
                "stream": stream,
                "messages": [{"role": "user", "content": "hi"}],
            }
            await self.call(session, "/v1/chat/completions", body)

    async def call(self, session: aiohttp.ClientSession, path: str, body: Any) -> None:
        try:
            response = await session.post(self.url + path, json=body)
        except aiohttp.ClientConnectorError:
            self.refused += 1
            await asyncio.sleep(0.01)
            return
        except (aiohttp.ClientError, OSError) as exc:  # sent, and lost before any answer
            self.broken.append(f"no answer: {type(exc).__name__}: {exc}")
            return
        rid = response.headers.get("x-request-id", "?")
        try:
            raw = await response.read()
        except (aiohttp.ClientError, OSError) as exc:
            self.broken.append(f"{rid}: {type(exc).__name__}")
            return
        if body.get("stream") and response.status == 200 and b"data: [DONE]" not in raw:
            self.cut.append(rid)  # ended by an error event: the call was not completed
            return
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        self.answered.add(rid)
        if response.status == 200:
            self.succeeded_at.append(time.monotonic())

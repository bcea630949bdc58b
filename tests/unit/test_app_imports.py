"""What a gateway imports at start-up: nothing a request may never need.

numpy (with the first vector store or large body), usearch (the first large
store) and the Redis client (only with `BULKHEAD_REDIS_URL`) are loaded when
used; each costs megabytes of resident memory and tenths of a second of start-up
in every gateway that never uses it (docs/benchmarks.md, issue 21).
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bulkhead.app.build import build
from bulkhead.settings import load

LAZY = ("numpy", "usearch", "tqdm", "redis")


def test_the_serve_path_leaves_the_optional_libraries_unloaded() -> None:
    script = (
        "import json, sys\n"
        "import bulkhead.cli.main\n"
        "from bulkhead.app import build, server_ssl_context\n"
        "from bulkhead.app.backends import open_capacity, open_limiter\n"
        "from bulkhead.web import jsonpieces\n"
        "jsonpieces.loads(b'{\"small\": [1, 2, 3]}')\n"
        f"print(json.dumps([m for m in {LAZY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_start_up_turns_the_collector_back_on(tmp_path: Path) -> None:
    """`bulkhead serve` imports and builds with the collector off (`cli.main`); the
    application's start-up collects, freezes what it built and turns collection on."""
    app = build(load(data_dir=tmp_path / "data", env={"BULKHEAD_START_WORKERS": "0"}))

    async def started() -> bool:
        await app.startup()
        try:
            return gc.isenabled()
        finally:
            await app.shutdown()

    gc.disable()
    try:
        assert asyncio.run(started())
    finally:
        gc.enable()


def test_start_up_freezes_without_a_collection_only_after_building_with_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bulkhead serve`'s start-up (collector off) freezes without the full collection;
    an application made with the collector on (tests) is collected first."""
    collected: list[int] = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda generation=2: collected.append(generation) or 0)
    for was_on in (False, True):
        app = build(load(data_dir=tmp_path / f"data{was_on}", env={"BULKHEAD_START_WORKERS": "0"}))
        collected.clear()

        async def run() -> int:
            await app.startup()
            try:
                return gc.get_freeze_count()
            finally:
                await app.shutdown()

        (gc.enable if was_on else gc.disable)()
        try:
            assert asyncio.run(run()) > 0
        finally:
            gc.unfreeze()
            gc.enable()
        assert collected == ([2] if was_on else [])
    real()


def test_libphonenumber_loads_with_the_first_phone_detector_and_finds_phones() -> None:
    """A guard that finds no phones (the default: secrets) never loads libphonenumber."""
    script = (
        "import json, sys\n"
        "from bulkhead.guard._entities import Entity\n"
        "from bulkhead.guard._scan import EntityScanner\n"
        "secrets = EntityScanner([Entity.API_KEY, Entity.PRIVATE_KEY])\n"
        "before = 'phonenumbers' in sys.modules\n"
        "found = EntityScanner([Entity.PHONE]).find('call +44 20 7946 0958 today')\n"
        "print(json.dumps([before, 'phonenumbers' in sys.modules, [f.entity for f in found]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, True, ["phone"]]


_SQLITE_SERVING = """
import asyncio, json, sys
from pathlib import Path
from bulkhead.app.build import build
from bulkhead.settings import load
from bulkhead.store import direct, files, usage
from bulkhead.runtime.upstream import Target, UpstreamClient
from bulkhead.errors import UpstreamError

ANSWER = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}'

async def answer(reader, writer):
    await reader.readuntil(b"\\r\\n\\r\\n")
    await reader.readexactly(2)  # the request's body: {}
    head = b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\n"
    head += b"content-length: %d\\r\\n\\r\\n"
    writer.write(head % len(ANSWER) + ANSWER)
    await writer.drain()
    writer.close()

async def main(data: Path) -> list[str]:
    app = build(load(data_dir=data, env={"BULKHEAD_START_WORKERS": "0"}))
    await app.startup()
    try:
        if sys.argv[2] == "first":  # a fresh store: migrated (Alembic loads every dialect)
            return []
        direct.compile_sql(usage._upsert("sqlite"), "sqlite")
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = UpstreamClient(connect_timeout_s=2)
        got = await client.call(Target(f"http://localhost:{port}/v1", "m"), "/chat/completions", {})
        assert got["choices"][0]["message"]["content"] == "hi"
        server.close()
        try:  # a refused connection: the client's error mapping runs too
            await client.call(Target(f"http://localhost:{port}/v1", "m"), "/chat/completions", {})
        except UpstreamError:
            pass
        await client.close()
    finally:
        await app.shutdown()
    return [m for m in ("aiohttp", "sqlalchemy.dialects.postgresql") if m in sys.modules]

print(json.dumps(asyncio.run(main(Path(sys.argv[1])))))
"""


def test_a_sqlite_gateway_serves_without_aiohttp_or_the_postgresql_dialect(
    tmp_path: Path,
) -> None:
    """A restart on a migrated store: start-up, the upstream client's call (a name resolved,
    the egress checks, an error mapped) and the store's SQLite statements load neither.
    aiohttp is the IdP fetcher's and `native=False`'s, the PostgreSQL dialect PostgreSQL's
    and Alembic's (docs/benchmarks.md, session 16)."""
    for run in ("first", "again"):
        done = subprocess.run(
            [sys.executable, "-c", _SQLITE_SERVING, str(tmp_path / "data"), run],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []

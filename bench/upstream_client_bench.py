"""CPU per call of the upstream client alone: its own HTTP/1.1 transport against aiohttp's.

A raw upstream in a child process (its CPU is not counted) answers every POST
with one small chat answer, or with a short SSE stream of 20 events; this
process runs `UpstreamClient.call` / `.stream` sequentially on uvloop, taking
turns between `native=True` and `native=False` so drift falls on both, and
prints the median CPU time of this process per call (µs) for each.

Usage: python bench/upstream_client_bench.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

import uvloop

from bulkhead.runtime.upstream import Target, UpstreamClient

SERVER = r"""
import asyncio, sys
import orjson
ANSWER = orjson.dumps({"id": "x", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "hello " * 20},
     "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 20}})
EVENT = b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": "hi "}}]})
PLAIN = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(ANSWER), ANSWER)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
def chunk(data): return b"%x\r\n%s\r\n" % (len(data), data)
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            if b'"stream"' in body:
                writer.write(HEAD)
                for _ in range(20):
                    writer.write(chunk(EVENT + b"\n\n"))
                    await writer.drain()
                writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            else:
                writer.write(PLAIN)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}


async def measure(client: UpstreamClient, target: Target, calls: int, stream: bool) -> float:
    """CPU µs of this process per call, over `calls` sequential calls (after a warm-up)."""
    payload = {**CHAT, "stream": True} if stream else CHAT
    for _ in range(20):
        await one(client, target, payload, stream)
    start = time.process_time()
    for _ in range(calls):
        await one(client, target, payload, stream)
    return (time.process_time() - start) / calls * 1e6


async def one(
    client: UpstreamClient, target: Target, payload: dict[str, Any], stream: bool
) -> None:
    if stream:
        async for _ in client.stream(target, "/chat/completions", payload):
            pass
    else:
        await client.call(target, "/chat/completions", payload)


async def bench(port: int, calls: int, rounds: int) -> None:
    target = Target(f"http://127.0.0.1:{port}/v1", "m")
    clients = {"h1": UpstreamClient(native=True), "aiohttp": UpstreamClient(native=False)}
    for stream in (False, True):
        results: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(rounds):
            for name, client in clients.items():
                results[name].append(await measure(client, target, calls, stream))
        kind = "stream (20 events)" if stream else "call"
        h1, aio = statistics.median(results["h1"]), statistics.median(results["aiohttp"])
        print(f"{kind:>20}: h1 {h1:7.1f} µs  aiohttp {aio:7.1f} µs  h1/aiohttp {h1 / aio:.2f}")
    for client in clients.values():
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        uvloop.run(bench(port, args.calls, args.rounds))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

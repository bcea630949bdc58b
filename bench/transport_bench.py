"""The transport's own Python per call, without sockets: the lean server and the upstream client.

A gateway request's transport is two halves: the lean HTTP server
(`web.h1server` and `web.h1call`: parsing the request, the scope, the call's
task, `receive`, the answer's head and framing) and the pooled upstream
client (`runtime.upstream`, `h1pool`, `h1`: the request's bytes, the pool,
parsing the answer, its checks).  Over real sockets both are lost in the
system calls and the chain (docs/benchmarks.md, "Session 14"); here each runs
against a fake transport on uvloop, so what is measured is their Python:

* server: `H1Connection` fed one typical chat request (five headers, a
  small JSON body) by a fake transport; a trivial app reads the body and
  answers as `web.responses.send_bytes` does (four headers and a length);
* client: `UpstreamClient.call` on a target with an Authorization header,
  its connection's fake transport answering each request with a 300-byte
  chat answer at the loop's next turn.

With `--a` and `--b`, two checkouts take turns (A B A B ...), each in a fresh
process pinned to CPU 1 (the gateway's bench CPU 0 is left to others), and the
median of each side and of the paired ratios B/A are printed.

Usage: python bench/transport_bench.py [--calls 20000] [--rounds 5]
                                       [--a CHECKOUT --b CHECKOUT --pairs 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Authorization: Bearer bk_xxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nContent-Type: application/json\r\n"
    b"User-Agent: wrk\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
ANSWER = (
    b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"' + b"hello " * 20 + b'"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":20}}'
)
UPSTREAM_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 07 Dec 2026 14:00:00 GMT\r\n"
    b"Server: fake\r\nContent-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
)
HEADERS = [
    (b"content-type", b"application/json"),
    (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
    (b"x-ratelimit-remaining-requests", b"99"),
    (b"x-ratelimit-remaining-tokens", b"9999"),
]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}


class FakeTransport:
    """What the server's connection and the client's use of a transport."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer  # (loop, connection) for the client's: it answers each write
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.answer is not None:
            loop, conn = self.answer
            loop.call_soon(conn.data_received, UPSTREAM_ANSWER)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8080) if name in ("sockname", "peername") else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


async def server_round(calls: int) -> float:
    """CPU µs per request of the lean server's connection, its app trivial."""
    from bulkhead.web.h1server import H1Connection, ServerState
    from bulkhead.web.responses import send_bytes
    from bulkhead.web.server import ServerConfig

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send_bytes(send, 200, ANSWER, HEADERS)

    state = ServerState(app, ServerConfig())
    state.date_header = b"date: Mon, 07 Dec 2026 14:00:00 GMT\r\n"
    conn = H1Connection(state)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    start = time.process_time()
    for _ in range(calls):
        conn.data_received(REQUEST)
        await asyncio.sleep(0)  # the call's task runs
        await asyncio.sleep(0)  # the held head's flush
    spent = time.process_time() - start
    assert conn.running is None and transport.written > calls * len(ANSWER)
    return spent / calls * 1e6


async def client_round(calls: int) -> float:
    """CPU µs per call of `UpstreamClient.call` over one pooled fake connection."""
    from bulkhead.runtime import h1pool
    from bulkhead.runtime.h1 import Connection
    from bulkhead.runtime.upstream import Target, UpstreamClient

    loop = asyncio.get_running_loop()

    async def fake_open(*_: Any) -> Connection:
        conn = Connection(loop)
        conn.connection_made(FakeTransport((loop, conn)))  # type: ignore[arg-type]
        return conn

    h1pool.H1Transport._open = fake_open  # type: ignore[method-assign,assignment]
    client = UpstreamClient(native=True)
    target = Target("http://127.0.0.1:9/v1", "m", headers={"authorization": "Bearer sk-up"})
    for _ in range(100):
        await client.call(target, "/chat/completions", CHAT)
    start = time.process_time()
    for _ in range(calls):
        await client.call(target, "/chat/completions", CHAT)
    spent = time.process_time() - start
    await client.close()
    return spent / calls * 1e6


def measure(calls: int, rounds: int) -> dict[str, float]:
    """The best of `rounds` for each half (the least disturbed by other processes)."""
    import uvloop

    found: dict[str, list[float]] = {"server": [], "client": []}
    for _ in range(rounds):
        found["server"].append(uvloop.run(server_round(calls)))
        found["client"].append(uvloop.run(client_round(calls)))
    return {name: min(values) for name, values in found.items()}


def one_process(checkout: Path, calls: int, rounds: int) -> dict[str, float]:
    python = checkout / ".venv" / "bin" / "python"
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import transport_bench as t; "
        "print(json.dumps(t.measure(int(sys.argv[2]), int(sys.argv[3]))))"
    )
    here = str(Path(__file__).resolve().parent)
    cmd = ["taskset", "-c", "1", str(python), "-c", code, here, str(calls), str(rounds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=checkout)
    result: dict[str, float] = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--a", type=Path, help="a checkout to compare against (with --b)")
    parser.add_argument("--b", type=Path)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    if args.a is None or args.b is None:
        for name, value in measure(args.calls, args.rounds).items():
            print(f"{name}: {value:.2f} µs of CPU per call")
        return
    sides: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for _ in range(args.pairs):
        sides["A"].append(one_process(args.a, args.calls, args.rounds))
        sides["B"].append(one_process(args.b, args.calls, args.rounds))
    for half in ("server", "client"):
        a = [run[half] for run in sides["A"]]
        b = [run[half] for run in sides["B"]]
        ratios = sorted(y / x for x, y in zip(a, b, strict=True))
        print(
            f"{half}: A {statistics.median(a):.2f} µs, B {statistics.median(b):.2f} µs, "
            f"B/A {statistics.median(ratios):.3f} ({ratios[0]:.3f} to {ratios[-1]:.3f})"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

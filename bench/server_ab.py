"""The HTTP server alone: `web.server` against uvicorn, serving the same trivial ASGI app.

`bench/ab.py --a . --a-env BULKHEAD_HTTP_SERVER=uvicorn --a-env
BULKHEAD_HTTP_UVICORN_UNBOUNDED=1` compares the two servers under the whole
gateway, where the server is a few per cent of a request's CPU; this script
takes the gateway away, so what is left is the server's own cost per request
(parsing, the ASGI call's objects, the writes, the system calls).  Each server
runs in its own process pinned to CPU 0, wrk on CPU 1; runs alternate A B B A
... and the medians of CPU per request and of the paired ratios are printed.

Usage: python bench/server_ab.py [--pairs 6] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

import harness
import loadgen
from harness import HOST

SERVERS = ("uvicorn", "bulkhead")
LOADS = (1, 16, 64)
ANSWER = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[]}' * 3


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body, answers a fixed JSON object with three headers."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(ANSWER)),
        (b"x-request-id", b"0123456789abcdef"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


def serve(which: str, port: int) -> None:
    """The child: serve `app` with `which`, configured as `bulkhead serve` does."""
    if which == "uvicorn":
        import uvicorn

        from bulkhead.web.drain import DrainingHttpProtocol, DrainingServer

        config = uvicorn.Config(
            app,
            host=HOST,
            port=port,
            loop="uvloop",
            http=DrainingHttpProtocol,
            lifespan="on",
            ws="none",
            access_log=False,
            log_level="warning",
            server_header=False,
            proxy_headers=False,
        )
        DrainingServer(config).run()
    else:
        from bulkhead.web.server import Server, ServerConfig

        Server(app, ServerConfig(host=HOST, port=port)).run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve:
        serve(opts.serve, opts.port)
        return 0
    harness.pin_self()
    cpu: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls, pids = {}, {}
        for which in SERVERS:
            port = harness.free_port()
            cmd = [sys.executable, __file__, "--serve", which, "--port", str(port)]
            log = Path(tmp) / f"{which}.log"
            service = harness.spawn(which, cmd, harness.GATEWAY_CPU, log, harness.child_env())
            stack.callback(harness.stop, service)
            urls[which], pids[which] = f"http://{HOST}:{port}/v1/chat/completions", service.pid
            harness.wait_until(urls[which], service, 30, accept_any=True)
        body = loadgen.chat_body("fake")
        for n in range(opts.pairs):
            order = SERVERS if n % 2 == 0 else SERVERS[::-1]
            for conns in LOADS:
                for which in order:
                    run = functools.partial(
                        loadgen.wrk, urls[which], body, "k", conns, opts.seconds
                    )
                    result, used = loadgen.measured(tuple(pids.values()), run)
                    cpu.setdefault((which, conns), []).append(
                        used.cpu_ms[pids[which]] / result.requests
                    )
            print(f"pair {n + 1}/{opts.pairs} done", file=sys.stderr, flush=True)
    print("| load | CPU/req uvicorn (ms) | CPU/req web.server (ms) | ratio | paired min-max |")
    print("|---|---|---|---|---|")
    for conns in LOADS:
        a, b = cpu[("uvicorn", conns)], cpu[("bulkhead", conns)]
        ratios = sorted(y / x for x, y in zip(a, b, strict=True))
        print(
            f"| c{conns} | {median(a):.4f} | {median(b):.4f} | {median(ratios):.3f} "
            f"| {ratios[0]:.3f} to {ratios[-1]:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

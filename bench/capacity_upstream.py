"""A model server of fixed capacity: `--capacity` calls at a time, each `--service-ms` long.

Calls beyond the capacity wait in one FIFO queue, as on a real inference
server whose batch is full.  Answers chat completions with a fixed reply.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
from aiohttp import web


def make_app(capacity: int, service_s: float) -> web.Application:
    slots = asyncio.Semaphore(capacity)

    async def chat(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        async with slots:
            await asyncio.sleep(service_s)
        reply = {
            "id": "cap",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
        }
        return web.Response(body=orjson.dumps(reply), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--service-ms", type=float, default=50.0)
    args = parser.parse_args()
    web.run_app(
        make_app(args.capacity, args.service_ms / 1000),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()

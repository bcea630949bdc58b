"""CPU per 20-event streamed chat completion, in process: the relay, the meter, the output guard.

    .venv/bin/python bench/stream_bench.py [--streams N] [--guard default|pii] [--text lorem|prose]

The same set-up as `answer_bench.py` (the real `UpstreamClient` with its HTTP
exchange replaced by bytes in memory, `OpenAIEndpoints` under
`GuardOutMiddleware`), with the stream metered as a limited tenant's is (32
tokens reserved, as the gateway bench asks) and a usage chunk at the end.
`lorem` is the fake upstream's words; `prose` has digits near every piece, so
the scanner's quiet gate rarely applies.  Compare two trees by running it with
`PYTHONPATH=<other tree>/src` in turns: the figure is CPU time, not wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc

import orjson

import answer_bench as ab
from bulkhead.guard import Guard, GuardConfig
from bulkhead.limits.admission import FreeTicket
from bulkhead.limits.tokens import O200kCounter
from bulkhead.web.scope import GUARDED, TICKET

TEXTS = {
    "lorem": ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"),
    "prose": tuple(ab.SMALL.split()),
}


def events(words: tuple[str, ...]) -> list[bytes]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up"}
    out = []
    for i in range(20):
        choice = {"index": 0, "delta": {"content": words[i % len(words)] + " "}}
        out.append(head | {"choices": [choice | {"logprobs": None, "finish_reason": None}]})
    out.append(head | {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 20}})
    return ab.stream([b"data: " + orjson.dumps(e) + b"\n\n" for e in out])


async def main(streams: int, guard: str, text: str) -> None:
    gc.collect()
    gc.freeze()
    layer = ab.app(ab.client(ab._Response(b"", events(TEXTS[text]))))
    scope = ab.scope_for(32, True)
    scope[TICKET] = FreeTicket(32, O200kCounter())
    if guard == "default":
        call = scope[GUARDED]
        scope[GUARDED] = type(call)(Guard(GuardConfig()), call.vault, call.canary)
    cost = await ab.per_request(layer, scope, streams)
    print(f"20-event stream, guard {guard}, {text}: {cost:.1f} us CPU a stream")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=3000)
    parser.add_argument("--guard", choices=("default", "pii"), default="default")
    parser.add_argument("--text", choices=tuple(TEXTS), default="lorem")
    opts = parser.parse_args()
    asyncio.run(main(opts.streams, opts.guard, opts.text))

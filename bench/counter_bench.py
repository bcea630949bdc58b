"""The two prompt counters (`BULKHEAD_TOKEN_COUNTER`): CPU a count, and the event loop's wait.

`python bench/counter_bench.py` times `O200kCounter("tiktoken")` against
`O200kCounter("compact")` in one process (best of 15 rounds of 10 calls, CPU time) on
the bench's prompt, 1.5 KiB of English and of Markdown, 1,500 Chinese
characters and 7 MB of English, checks that both give the same counts, and
measures how late a 1 ms asyncio timer runs while a worker thread counts the
7 MB (the switch interval at 1 ms, as `gateway/offload.py` sets it).  Pin it
(`taskset -c 1`) and compare ratios on a loaded machine, not absolute times.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bulkhead.limits.tokens import O200kCounter

ROOT = Path(__file__).resolve().parent.parent


def best(count: Callable[[str], int], text: str, rounds: int = 15, calls: int = 10) -> float:
    fastest = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        for _ in range(calls):
            count(text)
        fastest = min(fastest, (time.process_time() - began) / calls)
    return fastest


async def lateness(count: Callable[[str], int], text: str) -> tuple[float, float, float]:
    """Median, p99 and worst lateness (ms) of a 1 ms timer while a thread counts `text`."""
    sys.setswitchinterval(0.001)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (count(text), done.set()))
    worker.start()
    late: list[float] = []
    while not done.is_set():
        began = time.perf_counter()
        await asyncio.sleep(0.001)
        late.append((time.perf_counter() - began - 0.001) * 1000)
    worker.join()
    late.sort()
    return late[len(late) // 2], late[int(len(late) * 0.99)], late[-1]


def main() -> int:
    prose = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    chinese = "我们的季度报告已经准备好了，请在周五之前审阅。北京、上海和深圳的数据都包括在内。"  # noqa: RUF001
    texts = {
        "hello": "hello",
        "English, 1.5 KiB": prose[40000:41500],
        "Markdown, 1.5 KiB": (ROOT / "README.md").read_text(encoding="utf-8")[:1500],
        "Chinese, 1,500 characters": (chinese * 40)[:1500],
    }
    engines = {name: O200kCounter(name) for name in ("tiktoken", "compact")}
    for counter in engines.values():
        counter.load()
    fast, lean = engines["tiktoken"].count, engines["compact"].count
    for name, text in texts.items():
        assert fast(text) == lean(text), name
        a, b = best(fast, text), best(lean, text)
        print(f"{name}: tiktoken {a * 1e6:.1f} µs, compact {b * 1e6:.1f} µs (x{b / a:.1f})")
    big = (prose * (7_000_000 // len(prose) + 1))[:7_000_000]
    for name, count in (("tiktoken", fast), ("compact", lean)):
        began = time.process_time()
        tokens = count(big)
        print(
            f"7 MB of English, {name}: {time.process_time() - began:.2f} s of CPU, {tokens} tokens"
        )
        median, p99, worst = asyncio.run(lateness(count, big))
        late = f"{median:.2f} / {p99:.2f} / {worst:.1f} ms"
        print(f"  a 1 ms timer meanwhile late by {late} (p50 / p99 / max)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

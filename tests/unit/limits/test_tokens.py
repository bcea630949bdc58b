"""The o200k counter: exact from the first call, built once, a damaged vocabulary refused."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.errors import ConfigError, Unavailable
from bulkhead.limits import _o200k, tokens
from bulkhead.limits.tokens import O200kCounter


@pytest.fixture(autouse=True)
def _fresh_build() -> Iterator[None]:
    """Each test builds its own encoder (the module keeps one per process)."""
    tokens._compact_bpe.cache_clear()
    tokens._core_bpe.cache_clear()
    yield
    tokens._compact_bpe.cache_clear()
    tokens._core_bpe.cache_clear()


def test_a_fresh_counter_counts_exactly_from_the_first_call() -> None:
    counter = O200kCounter()
    assert not counter.ready
    # 11 UTF-8 bytes, 2 tokens: the first call waits for the encoder, it does not guess.
    assert counter.count("hello world") == 2
    assert counter.ready


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that built the tokenizer, one a build."""
    names: list[str] = []
    real = tokens._core_bpe

    def counted() -> object:
        names.append(threading.current_thread().name)
        return real()

    monkeypatch.setattr(tokens, "_core_bpe", counted)
    return names


def test_start_builds_once_on_a_background_thread(builds: list[str]) -> None:
    counter = O200kCounter()
    for _ in range(3):
        counter.start()
    counter.load()
    assert counter.count("你好，世界") == 3  # noqa: RUF001
    assert builds == ["o200k-build"]


def test_build_here_builds_once_on_the_calling_thread(builds: list[str]) -> None:
    """The gateway builds on the event loop's thread (less resident memory)."""
    counter = O200kCounter()
    counter.build_here()
    counter.build_here()
    counter.start()
    assert counter.ready
    assert counter.count("hello world") == 2
    assert builds == [threading.current_thread().name]


def test_no_other_thread_runs_in_the_middle_of_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its token strings are not interleaved with another thread's objects (less resident
    memory); the interpreter's switch interval is given back after it, failed or not."""
    seen: list[float] = []
    real = _o200k.ranks

    def ranks() -> dict[bytes, int]:
        seen.append(sys.getswitchinterval())
        return real()

    monkeypatch.setattr(_o200k, "ranks", ranks)
    before = sys.getswitchinterval()
    O200kCounter().build_here()
    assert seen == [tokens._BUILD_SWITCH_S] and sys.getswitchinterval() == before
    tokens._core_bpe.cache_clear()
    monkeypatch.setattr(_o200k, "ranks", _damaged)
    with pytest.raises(Unavailable):
        O200kCounter().build_here()
    assert sys.getswitchinterval() == before


def test_check_refuses_a_damaged_vocabulary(monkeypatch: pytest.MonkeyPatch) -> None:
    O200kCounter.check()
    monkeypatch.setattr(_o200k, "COMPACT_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="damaged"):
        O200kCounter.check()  # the gateway's start-up stops: fail closed


def test_build_here_refuses_a_damaged_vocabulary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_core_bpe", _damaged)
    with pytest.raises(Unavailable, match="could not be built"):
        O200kCounter().build_here()  # every count fails (a 503): never an inexact one


def _damaged() -> object:
    raise ValueError("not OpenAI's o200k_base")


def test_a_damaged_vocabulary_fails_every_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_o200k, "COMPACT_SHA256", "0" * 64)
    counter = O200kCounter()
    with pytest.raises(Unavailable, match="could not be built"):
        counter.count("hello")
    with pytest.raises(Unavailable):
        counter.count("hello")  # never falls back to an inexact count


def test_the_compact_form_refuses_what_it_is_not() -> None:
    with pytest.raises(ValueError, match="not OpenAI's"):
        _o200k.compact(b"aGVsbG8= 0\n")
    good = _o200k.shipped()
    with pytest.raises(ValueError, match="truncated"):
        _o200k.tokens(good[:-1])
    with pytest.raises(ValueError, match="not a compact"):
        _o200k.tokens(b"O200K0\n" + good[7:])


def test_importing_the_limits_does_not_load_tiktoken() -> None:
    code = "import sys, bulkhead.limits; print('tiktoken' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("engine", ["tiktoken", "compact"])
def test_either_engine_counts_the_same(engine: str) -> None:
    counter = O200kCounter(engine)
    counter.build_here()
    assert counter.count("hello world") == 2
    assert counter.count("你好，世界") == 3  # noqa: RUF001
    long = "The quick brown fox jumps. " * 5000  # cut into pieces where the pattern cuts
    assert counter.count(long) == O200kCounter(
        "compact" if engine == "tiktoken" else "tiktoken"
    ).count(long)


def test_the_setting_picks_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bulkhead.settings import load

    assert load(data_dir=str(tmp_path)).token_counter == "tiktoken"  # the default
    monkeypatch.setenv("BULKHEAD_TOKEN_COUNTER", "compact")
    assert load(data_dir=str(tmp_path)).token_counter == "compact"
    monkeypatch.setenv("BULKHEAD_TOKEN_COUNTER", "bytes")
    with pytest.raises(ConfigError, match="BULKHEAD_TOKEN_COUNTER"):
        load(data_dir=str(tmp_path))


def test_a_slower_engine_counts_less_on_the_event_loop() -> None:
    """The compact engine weighs 16 (1 KiB counted inline, not 16); tiktoken and counters
    that say nothing weigh 1; the admission layer and the stream meter take the weight."""
    from bulkhead.gateway.admit import AdmissionMiddleware
    from bulkhead.gateway.offload import Offload
    from bulkhead.limits import ByteCounter, StreamMeter, count_weight

    assert count_weight(O200kCounter("compact")) == 16
    assert count_weight(O200kCounter("tiktoken")) == count_weight(ByteCounter()) == 1
    assert count_weight(None) == 1
    assert StreamMeter(O200kCounter("compact"), allowance=4).weight == 16

    class Admitting:
        counter = O200kCounter("compact")

    layer = AdmissionMiddleware(object(), admission=Admitting(), offload=Offload())  # type: ignore[arg-type]
    assert layer.weight == 16
    assert layer.offload.small(1024 * layer.weight)
    assert not layer.offload.small(2048 * layer.weight)  # a 2 KiB body: a worker thread counts it


def test_build_here_does_not_wait_for_a_build_on_another_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A large first body is counted (the encoder built) on a worker thread; the gateway's
    own build after the first answer then returns at once, not holding the event loop for
    the rest of the worker's build.  A count still waits for it."""
    inside, go = threading.Event(), threading.Event()
    real = _o200k.ranks

    def ranks() -> dict[bytes, int]:
        inside.set()
        go.wait(10)
        return real()

    monkeypatch.setattr(_o200k, "ranks", ranks)
    counter = O200kCounter()
    worker = threading.Thread(target=counter.count, args=("hello",))
    worker.start()
    assert inside.wait(10)
    at = time.monotonic()
    counter.build_here()
    assert time.monotonic() - at < 5 and not counter.ready
    go.set()
    worker.join(10)
    assert counter.count("hello world") == 2

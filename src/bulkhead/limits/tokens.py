"""Prompt tokens counted before the call, with OpenAI's o200k_base BPE (via tiktoken).

The vocabulary ships with Bulkhead in a compact form (`limits/_o200k.py`: the
table OpenAI publishes, converted once, its hash pinned), so nothing is
downloaded at run time.  The counter keeps only tiktoken's Rust encoder
(`CoreBPE`), not the Python dictionary of 200,000 ranks it was built from: that
dictionary alone held some 30 MB for the life of the process.

Building the encoder takes about 0.2 s; the application builds it during its
start-up, before it listens (`app/application.py`), and a call that needs it
before it is built waits for it: every count is exact, the first one too.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from bulkhead.limits import _o200k

if TYPE_CHECKING:
    import tiktoken

log = logging.getLogger(__name__)

# The split pattern of o200k_base, as in tiktoken_ext/openai_public.py.
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
# OpenAI's chat accounting: each message costs its fields plus 3, the reply is primed with 3.
_PER_MESSAGE = 3
_REPLY_PRIMING = 3
# The common roles are one token each in o200k_base; anything else is counted.
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
# An image part, counted at the low-detail price; its bytes are not text.
_IMAGE_TOKENS = 85
# Long texts are encoded a piece at a time (see `O200kCounter.count`).
_PIECE = 64 * 1024


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


def load_o200k() -> tiktoken.Encoding:
    """The whole encoder (it decodes too) from the bundled vocabulary, for the vector store's
    chunking; refuses a damaged file."""
    import tiktoken  # only its users pay for it

    return tiktoken.Encoding(
        name="o200k_base",
        pat_str=_O200K_PATTERN,
        mergeable_ranks=_o200k.ranks(),
        special_tokens=_SPECIAL,
    )


@functools.cache
def _core_bpe() -> Any:
    """tiktoken's Rust encoder alone, built from the bundled vocabulary; the Python
    dictionary it is built from is dropped, and the C heap it churned handed back.
    Immutable, so one per process: applications built side by side (replicas in one
    test process) share it."""
    from tiktoken import _tiktoken  # type: ignore[attr-defined]  # off the app's import path

    core = _tiktoken.CoreBPE(_o200k.ranks(), _SPECIAL, _O200K_PATTERN)
    _trim_heap()
    return core


def _trim_heap() -> None:
    """glibc keeps freed memory for reuse; the build's temporaries are tens of MB, once."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to hand back
        ctypes.CDLL(None).malloc_trim(0)


class O200kCounter:
    """Counts with o200k_base; a count asked for before the encoder is built waits for it."""

    def __init__(self) -> None:
        self._core: Any = None
        self._lock = threading.Lock()
        self._built = threading.Event()
        self._loading: threading.Thread | None = None
        self._failure: BaseException | None = None

    def count(self, text: str) -> int:
        """The tokens of `text`, as tiktoken's `encode_ordinary` counts them.

        The encoder lets go of the interpreter lock while it encodes, but not
        while it builds the list of tokens, so a long text is encoded in pieces
        of `_PIECE` characters: a worker thread counting a 7 MB prompt then
        keeps the event loop waiting a millisecond at a time, not 80 ms.  A
        piece's edge may split a word, which changes the count by a token or
        so; the reservation is reconciled with the upstream's count anyway.
        """
        core = self._core
        if core is None:
            core = self._wait()
        # Special-token text is counted as ordinary text: a prompt cannot smuggle them in.
        if len(text) <= _PIECE:
            return _ordinary(core, text)
        pieces = range(0, len(text), _PIECE)
        return sum(_ordinary(core, text[i : i + _PIECE]) for i in pieces)

    def start(self) -> None:
        """Build the encoder on a background thread (start-up); safe to call more than once."""
        with self._lock:
            if self._loading is None:
                self._loading = threading.Thread(
                    target=self._build, name="o200k-build", daemon=True
                )
                self._loading.start()

    def load(self) -> None:
        """Build the encoder now (tests, tools); safe to call more than once."""
        self._wait()

    def build_here(self) -> None:
        """Build the encoder on this thread, unless it is built or being built; then wait
        for it.  The gateway's start-up builds it on the event loop's (main) thread:
        there its 43 MB sit in glibc's main arena, where a thread's build leaves some
        5 MB more resident in the thread's arena (docs/benchmarks.md, session 14)."""
        with self._lock:
            mine = self._loading is None
            if mine:
                self._loading = threading.current_thread()
        if mine:
            self._build()
        self._wait()

    @property
    def ready(self) -> bool:
        return self._core is not None

    def _wait(self) -> Any:
        self.start()
        self._built.wait()
        if self._core is None:
            raise RuntimeError("the o200k_base encoder could not be built") from self._failure
        return self._core

    def _build(self) -> None:
        try:
            self._core = _core_bpe()
        except Exception as exc:  # a damaged vocabulary: every count fails, loudly
            log.error("the o200k_base encoder could not be built: %s", exc)
            self._failure = exc
        finally:
            self._built.set()


def _ordinary(core: Any, text: str) -> int:
    """The length of `encode_ordinary(text)`; text with lone surrogates is first made valid
    the way tiktoken's `Encoding.encode_ordinary` does it."""
    try:
        return len(core.encode_ordinary(text))
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return len(core.encode_ordinary(text))


class ByteCounter:
    """The UTF-8 length: an upper bound of any byte-level BPE count, for tests and tiny hosts."""

    def count(self, text: str) -> int:
        return len(text.encode("utf-8", "surrogatepass"))


def prompt_tokens(counter: TokenCounter, endpoint: str, body: dict[str, Any]) -> int:
    """The prompt of a chat, completion or embedding request, in tokens."""
    if endpoint == "chat":
        return chat_tokens(counter, body.get("messages") or ()) + _tools_tokens(counter, body)
    field = "prompt" if endpoint == "completions" else "input"
    return _input_tokens(counter, body.get(field))


def chat_tokens(counter: TokenCounter, messages: Iterable[Any]) -> int:
    total = _REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += _PER_MESSAGE
        for name, value in message.items():
            if name == "content":
                total += _content_tokens(counter, value)
            elif name == "role" and value in _ROLES:
                total += 1
            elif isinstance(value, str):
                total += counter.count(value)
            elif value is not None:
                total += counter.count(_compact(value))  # tool calls and the like
    return total


def _content_tokens(counter: TokenCounter, content: Any) -> int:
    if isinstance(content, str):
        return counter.count(content)
    total = 0
    for part in content or ():
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            total += counter.count(part["text"])
        elif isinstance(part, dict):
            total += _IMAGE_TOKENS
    return total


def _tools_tokens(counter: TokenCounter, body: dict[str, Any]) -> int:
    tools = body.get("tools") or body.get("functions")
    return counter.count(_compact(tools)) if tools else 0


def _input_tokens(counter: TokenCounter, value: Any) -> int:
    if isinstance(value, str):
        return counter.count(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)  # already tokens
        return sum(_input_tokens(counter, v) for v in value)
    return 0


def _compact(value: Any) -> str:
    return orjson.dumps(value).decode()

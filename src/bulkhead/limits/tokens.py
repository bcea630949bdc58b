"""Prompt tokens counted before the call, with OpenAI's o200k_base BPE.

The vocabulary ships with Bulkhead in a compact form (`limits/_o200k.py`: the
table OpenAI publishes, converted once, its hash pinned), so nothing is
downloaded at run time.  Two engines count it, to the same counts
(`BULKHEAD_TOKEN_COUNTER`):

* `tiktoken`: tiktoken's Rust encoder (`CoreBPE`) alone, not the Python
  dictionary of ranks it is built from; fast, and 43 MB resident (it keeps
  the vocabulary three times over);
* `compact`: a count-only BPE of Bulkhead's own over the compact form
  (`limits/_bpe.py`): some 6 MB, but plain Python, 5 to 30 times the CPU a
  count (docs/benchmarks.md, "Session 15").

The vector stores' chunking encodes with a whole tiktoken `Encoding`
(`load_o200k`), which needs the tokens themselves.  The application checks
the vocabulary's hash at start-up and builds its counter right after its
first answer (`gateway/admit.py`); admission meanwhile reserves an upper
bound (each text's UTF-8 bytes, `LimitAdmission`) and counts exactly when
the count is needed; any other count asked for before the encoder is built
builds it on the asking thread, or waits for it: every count is exact.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from bulkhead.errors import Unavailable
from bulkhead.limits import _o200k
from bulkhead.switching import SWITCH

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
# Long texts are counted a piece at a time (see `O200kCounter.count`), in characters.
_PIECES = {"tiktoken": 64 * 1024, "compact": 8 * 1024}
# What a byte of text weighs for counting, against tiktoken's: the gateway counts on the
# event loop below its inline bound (`gateway/offload.py`) in bytes times this weight, so
# the compact engine (12-24 times tiktoken's CPU on 2 KiB of repeated characters, its worst:
# 6.5 ms) counts inline up to 1 KiB, not 16, about tiktoken's worst inline time (4 ms).
_WEIGHTS = {"tiktoken": 1, "compact": 16}
# How far back from a piece's end a cut that changes no count is looked for.
_CUT_SEARCH = 1024
# The interpreter's switch interval while the encoder is built (`_core_bpe`): longer than
# its Python part (some 0.1 s), so no thread that asks for the lock meanwhile interleaves
# its objects with it; and what the event loop waits, at worst, for a busy thread let in
# where the build lets go of the lock (reading and hashing the file): with 5 s that was
# 5 s a time, every tenant's requests held.
_BUILD_SWITCH_S = 0.5
_NOT_BUILT = (
    "Prompts cannot be counted on this server: its o200k_base encoder could not be built "
    "(see the server's log); retry on another replica."
)


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


def count_weight(counter: object) -> int:
    """What a byte of text weighs when `counter` counts it (1: tiktoken's speed or better)."""
    weight = getattr(counter, "weight", 1)
    return weight if isinstance(weight, int) and weight >= 1 else 1


class _Tiktoken:
    """tiktoken's Rust encoder, counting."""

    def __init__(self, core: Any) -> None:
        self._core = core

    def count(self, text: str) -> int:
        return len(self._core.encode_ordinary(text))


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
def _core_bpe() -> TokenCounter:
    """tiktoken's Rust encoder alone, built from the bundled vocabulary; the Python
    dictionary it is built from is dropped, and the C heap it churned handed back.
    Immutable, so one per process."""
    from tiktoken import _tiktoken  # type: ignore[attr-defined]  # off the app's import path

    # No other thread runs Python in the middle of the build (its Python part is some
    # 0.1 s, the Rust part holds the lock anyway): objects another thread makes between the
    # 200,000 token strings keep their memory pools alive once the strings are freed, 1-4 MB
    # more resident when the build runs beside the first answer's audit work; with the file
    # read outside this span, still 1.3 MB (docs/benchmarks.md, session 17).  Not while a
    # heavy job runs (`switching.SWITCH`): the event loop must not wait behind it.
    with SWITCH.held(_BUILD_SWITCH_S):
        core = _tiktoken.CoreBPE(_o200k.ranks(), _SPECIAL, _O200K_PATTERN)
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to hand back
        ctypes.CDLL(None).malloc_trim(0)  # the build's temporaries are tens of MB, once
    return _Tiktoken(core)


@functools.cache
def _compact_bpe() -> TokenCounter:
    """The count-only encoder, built from the bundled vocabulary (refused if damaged).
    Immutable, so one per process: applications built side by side (replicas in one
    test process) share either."""
    from bulkhead.limits._bpe import CompactBPE  # off the import path of `bulkhead.limits`

    return CompactBPE(*_o200k.unpack(_o200k.shipped()))


class O200kCounter:
    """Counts with o200k_base; a count asked for before the encoder is built waits for it."""

    def __init__(self, engine: str = "tiktoken") -> None:
        """`engine`: `tiktoken` or `compact` (module docstring)."""
        self._make = {"tiktoken": _core_bpe, "compact": _compact_bpe}[engine]
        self._piece = _PIECES[engine]
        self.weight = _WEIGHTS[engine]
        self._core: TokenCounter | None = None
        self._lock = threading.Lock()
        self._built = threading.Event()
        self._loading: threading.Thread | None = None
        self._failure: BaseException | None = None

    def count(self, text: str) -> int:
        """The tokens of `text`, as tiktoken's `encode_ordinary` counts them.

        A long text is counted in pieces of about `_PIECES` characters, which bounds
        what a piece is split into and the time any one call into native code holds
        the interpreter lock (tiktoken keeps it while it builds its list of tokens; a
        worker thread counting a 7 MB prompt must not keep the event loop waiting).
        A piece ends where the split pattern would cut anyway (`_cut`), so the count
        stays exact; only where no such place is near (a long text without ASCII
        words: Chinese, a run of symbols) is it cut hard, which moves the count by a
        token or so a cut.
        """
        core = self._core
        if core is None:
            core = self._wait()
        # Special-token text is counted as ordinary text: a prompt cannot smuggle them in.
        if len(text) <= self._piece:
            return _ordinary(core, text)
        total, start = 0, 0
        while start < len(text):
            end = _cut(text, start + self._piece)
            total += _ordinary(core, text[start:end])
            start = end
        return total

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
        """Build the encoder on this thread, unless it is built or being built (then return
        at once: a count waits for it; the event loop must not).  The gateway builds it on
        the event loop's (main) thread, right after its first answer: there its memory sits
        in glibc's main arena, not in a worker thread's arena (docs/benchmarks.md, session
        14).  Raises if the build fails here."""
        if self._claim():
            self._build()
            self._wait()

    @staticmethod
    def check() -> None:
        """Refuse a damaged bundled vocabulary now (a few ms: its hash), before the encoder
        is built from it: the gateway's start-up stops (fail closed)."""
        _o200k.shipped()

    @property
    def ready(self) -> bool:
        return self._core is not None

    def _wait(self) -> TokenCounter:
        """The encoder: built on this thread unless it is built or being built (then
        waited for)."""
        if self._claim():
            self._build()
        self._built.wait()
        if self._core is None:  # a 503 (the call is not counted, so not served), never a 500
            raise Unavailable(_NOT_BUILT) from self._failure
        return self._core

    def _claim(self) -> bool:
        """Whether this thread builds the encoder: none has started to (then it is marked
        as the builder)."""
        with self._lock:
            if self._loading is not None:
                return False
            self._loading = threading.current_thread()
            return True

    def _build(self) -> None:
        try:
            self._core = self._make()
        except Exception as exc:  # a damaged vocabulary: every count fails, loudly
            log.error("the o200k_base encoder could not be built: %s", exc)
            self._failure = exc
        finally:
            self._built.set()


def _cut(text: str, end: int) -> int:
    """Where a piece that should end near `end` ends: before a space between two ASCII
    letters if one is within `_CUT_SEARCH`, where o200k's pattern always cuts (no word,
    number or punctuation piece crosses into the space, and the word it starts does not
    look back), so the pieces count what the whole text counts; else at `end`."""
    if end >= len(text):
        return len(text)
    floor = end - _CUT_SEARCH
    at = text.rfind(" ", floor, end)
    while at > floor:
        if _ascii_letter(text[at - 1]) and _ascii_letter(text[at + 1]):
            return at
        at = text.rfind(" ", floor, at)
    return end


def _ascii_letter(char: str) -> bool:
    return char.isascii() and char.isalpha()


def _ordinary(core: TokenCounter, text: str) -> int:
    """The length of `encode_ordinary(text)`; text with lone surrogates is first made valid
    the way tiktoken's `Encoding.encode_ordinary` does it."""
    try:
        return core.count(text)
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return core.count(text)


class ByteCounter:
    """The UTF-8 length: an upper bound of any byte-level BPE count, for tests and tiny hosts."""

    def count(self, text: str) -> int:
        return len(text.encode("utf-8", "surrogatepass"))


_BYTES = ByteCounter()


def prompt_tokens(counter: TokenCounter, endpoint: str, body: dict[str, Any]) -> int:
    """The prompt of a chat, completion or embedding request, in tokens."""
    if endpoint == "chat":
        return chat_tokens(counter, body.get("messages") or ()) + _tools_tokens(counter, body)
    field = "prompt" if endpoint == "completions" else "input"
    return _input_tokens(counter, body.get(field))


def prompt_bound(
    counter: TokenCounter, endpoint: str | None, body: dict[str, Any]
) -> tuple[int, Callable[[], int] | None]:
    """The prompt's tokens; or, while `counter` is not built yet (the gateway builds it
    right after its first answer), an upper bound and how to count them exactly.

    The bound counts each text's UTF-8 bytes where the counter counts tokens (every
    o200k token is at least one byte, `ByteCounter`), the rest (per-message costs,
    images, token-id prompts) as the count does: never less than the count, so a
    call admitted against it would have been admitted against the count."""
    if endpoint is None:
        return 0, None
    if getattr(counter, "ready", True):
        return prompt_tokens(counter, endpoint, body), None
    bound = prompt_tokens(_BYTES, endpoint, body)
    return bound, functools.partial(prompt_tokens, counter, endpoint, body)


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

"""Prompt tokens counted before the call, with OpenAI's o200k_base BPE (via tiktoken).

The vocabulary ships with Bulkhead (`limits/data/o200k_base.tiktoken.gz`, the
file OpenAI publishes; its SHA-256 is pinned below and equals the hash that
tiktoken itself pins), so nothing is downloaded at run time.

Building the encoder takes about 0.4 s and some 80 MB, so it is built on a
background thread at the first call that needs it rather than at start-up.
Until it is ready a text counts as its UTF-8 length: with byte-level BPE
every token covers at least one byte, so that is an upper bound, and an
upper bound is all a reservation needs — the call is reconciled with the
upstream's actual usage afterwards.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from collections.abc import Iterable
from importlib import resources
from typing import Any, Protocol

import orjson
import tiktoken

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
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
    """Build the encoder from the bundled vocabulary, refusing a file whose hash differs."""
    packed = resources.files("bulkhead.limits").joinpath("data/o200k_base.tiktoken.gz")
    raw = gzip.decompress(packed.read_bytes())
    if hashlib.sha256(raw).hexdigest() != O200K_SHA256:
        raise RuntimeError("the bundled o200k_base vocabulary is damaged")
    ranks = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name="o200k_base", pat_str=_O200K_PATTERN, mergeable_ranks=ranks, special_tokens=_SPECIAL
    )


class O200kCounter:
    """Counts with o200k_base once it is built; a UTF-8 upper bound until then."""

    def __init__(self) -> None:
        self._encoding: tiktoken.Encoding | None = None
        self._lock = threading.Lock()
        self._loading: threading.Thread | None = None

    def count(self, text: str) -> int:
        """The tokens of `text`.

        The encoder lets go of the interpreter lock while it encodes, but not
        while it builds the list of tokens, so a long text is encoded in pieces
        of `_PIECE` characters: a worker thread counting a 7 MB prompt then
        keeps the event loop waiting a millisecond at a time, not 80 ms.  A
        piece's edge may split a word, which changes the count by a token or
        so; the reservation is reconciled with the upstream's count anyway.
        """
        encoding = self._encoding
        if encoding is None:
            self._start()
            return len(text.encode("utf-8", "surrogatepass"))
        # Special-token text is counted as ordinary text: a prompt cannot smuggle them in.
        if len(text) <= _PIECE:
            return len(encoding.encode_ordinary(text))
        pieces = range(0, len(text), _PIECE)
        return sum(len(encoding.encode_ordinary(text[i : i + _PIECE])) for i in pieces)

    def load(self) -> None:
        """Build the encoder now (start-up warm-up, tests); safe to call more than once."""
        self._start()
        if self._loading is not None:
            self._loading.join()

    @property
    def ready(self) -> bool:
        return self._encoding is not None

    def _start(self) -> None:
        with self._lock:
            if self._loading is None:
                self._loading = threading.Thread(target=self._build, daemon=True)
                self._loading.start()

    def _build(self) -> None:
        self._encoding = load_o200k()


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

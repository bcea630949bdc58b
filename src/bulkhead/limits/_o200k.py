"""The o200k_base vocabulary in a compact form that loads in a few tens of milliseconds.

OpenAI publishes o200k_base as `o200k_base.tiktoken`: one line per token, the
token's bytes in base64 and its rank (SHA-256 `O200K_SHA256`, the hash tiktoken
itself pins).  Parsing those 200,000 lines takes about half a second, so Bulkhead
ships the same table converted once (`compact`) into `data/o200k_base.ranks`:

    b"O200K1\\n"   magic and format version
    4 bytes      N, the number of tokens (big-endian)
    N bytes      the length of each token's bytes, in rank order (every one is 1..255)
    the tokens' bytes, concatenated in rank order

The ranks of o200k_base are exactly 0..N-1, so a token's rank is its position.
`tests/vectors/o200k/` holds OpenAI's file; a test converts it and compares the
result with the shipped file byte for byte, and the shipped file's own SHA-256
is pinned here too (`COMPACT_SHA256`): a damaged file is refused, never used.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from importlib import resources

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
COMPACT_SHA256 = "fe702d98a7501c739135d46100cc91ce4e333633bb5b53e9a8973e07628a2675"
COMPACT_FILE = "data/o200k_base.ranks"
_MAGIC = b"O200K1\n"
_COUNT = 4


def compact(published: bytes) -> bytes:
    """OpenAI's `o200k_base.tiktoken` (checked against its pinned hash) in the compact form."""
    if hashlib.sha256(published).hexdigest() != O200K_SHA256:
        raise ValueError("this is not OpenAI's o200k_base.tiktoken")
    tokens = []
    for rank, line in enumerate(line for line in published.splitlines() if line):
        token, number = line.split()
        if int(number) != rank:
            raise ValueError("o200k_base ranks are not 0..N-1")
        tokens.append(base64.b64decode(token))
    lengths = bytes(len(token) for token in tokens)  # ValueError if one were over 255 bytes
    return _MAGIC + len(tokens).to_bytes(_COUNT, "big") + lengths + b"".join(tokens)


def unpack(packed: bytes) -> tuple[bytes, bytes]:
    """The compact form's two parts: each token's length, and the tokens' bytes concatenated,
    both in rank order; refuses a file that is not one or is cut short."""
    if not packed.startswith(_MAGIC):
        raise ValueError("not a compact o200k vocabulary")
    start = len(_MAGIC) + _COUNT
    count = int.from_bytes(packed[len(_MAGIC) : start], "big")
    lengths = packed[start : start + count]
    body = packed[start + count :]
    if len(lengths) != count or sum(lengths) != len(body):
        raise ValueError("a truncated compact o200k vocabulary")
    return lengths, body


def tokens(packed: bytes) -> list[bytes]:
    """Every token's bytes, in rank order, from the compact form."""
    lengths, body = unpack(packed)
    ends = itertools.accumulate(lengths)
    return [body[end - size : end] for end, size in zip(ends, lengths, strict=True)]


def shipped() -> bytes:
    """The compact vocabulary that ships with Bulkhead, refused if its hash differs."""
    packed = resources.files("bulkhead.limits").joinpath(COMPACT_FILE).read_bytes()
    if hashlib.sha256(packed).hexdigest() != COMPACT_SHA256:
        raise RuntimeError("the bundled o200k_base vocabulary is damaged")
    return packed


def ranks() -> dict[bytes, int]:
    """The bundled vocabulary as tiktoken's mergeable ranks: token bytes to rank."""
    found = tokens(shipped())
    return dict(zip(found, range(len(found)), strict=True))

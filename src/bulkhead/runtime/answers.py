"""How large an upstream's answer to a call may be: in proportion to what the call asked for.

A model server answers a call with what it generated, and the call says how
much that may be: `max_tokens` (or `max_completion_tokens`) per choice, `n`
choices (times the prompts of a batch of completions), log probabilities if
it asked for them, its prompt back if it asked for that (`echo`), and for
embeddings one vector per input.  An answer larger than that is no answer to
this call; the gateway would only parse, filter and keep it, at a cost in
proportion to its size, for the benefit of whoever runs the server (a
tenant's own, for a model version).  So `answer_limit` bounds it (and the
upstream client holds every answer to the smaller of that and its absolute
`MAX_RESPONSE_BYTES`):

    FRAME_BYTES + choices * (CHOICE_BYTES + tokens * per_token)

where `tokens` is the length limit plus, when the call asks for its prompt
back, the bytes it sent (a prompt token is at least one byte of it), and
`per_token` is `TOKEN_BYTES`, plus `LOGPROB_BYTES` for each log-probability
entry a token brings (the token's own and its alternatives).  Embeddings:
`FRAME_BYTES + inputs * (CHOICE_BYTES + dimensions * FLOAT_BYTES)`.

The constants bound an answer's average with room to spare, whatever its
language: o200k's longest token is 128 bytes (a run of spaces) and none
takes more written as JSON, `\\uXXXX` escapes included (an escaped CJK
character is 6 bytes, an astral one 12, and such tokens are one or two
characters); English averages about 4 bytes a token, Chinese 8 escaped, and
other vocabularies' tokens are of the same kind.  A log-probability entry
(`token`, `logprob`, `bytes`) averages about 100 bytes.

A call that sent no length limit (only the platform's own callers: admission
writes the tier's default into every tenant's call) is bounded by the
absolute bound alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FRAME_BYTES = 64 * 1024
"""Everything an answer holds once: id, object, model, usage, fingerprints, vendor fields."""
CHOICE_BYTES = 1024
"""A choice's (or embedding's) own framing: index, role, finish reason, empty fields."""
TOKEN_BYTES = 128
"""One generated token as JSON text: the longest o200k token, escaped or not."""
LOGPROB_BYTES = 256
"""One log-probability entry: the token, its number and its bytes (about 100 on average)."""
EMBEDDING_DIMENSIONS = 8192
"""Dimensions assumed of a vector when the call does not name them (the largest in use: 4,096)."""
FLOAT_BYTES = 25
"""One number of a vector: `-1.2345678901234567e-123,`; base64 takes under 11."""
_ECHOES = ("echo", "prompt_logprobs", "return_token_ids")


def answer_limit(path: str, payload: Mapping[str, Any], sent: int) -> int | None:
    """The most bytes an answer to `payload` (POSTed to `path`, `sent` bytes) may hold;
    None when the call sets no bound (no length limit, or a path of no known answer)."""
    if path.endswith("/embeddings"):
        return _embeddings(payload)
    if path.endswith("/completions"):
        return _generation(payload, sent, _prompts(payload) if path == "/completions" else 1)
    return None


def _generation(payload: Mapping[str, Any], sent: int, prompts: int) -> int | None:
    # Admission refuses a call whose two length names differ.
    length = _count(payload.get("max_tokens")) or _count(payload.get("max_completion_tokens"))
    if not length:
        return None
    choices = prompts * (_count(payload.get("n")) or 1)
    echoed = 0
    for name in _ECHOES:
        if _asks(payload.get(name)):
            echoed = sent
    per_token = TOKEN_BYTES + _logprob_entries(payload) * LOGPROB_BYTES
    return FRAME_BYTES + choices * (CHOICE_BYTES + (length + echoed) * per_token)


def _logprob_entries(payload: Mapping[str, Any]) -> int:
    """Log-probability entries per token: 0 unless asked, else 1 and the alternatives asked for
    (`top_logprobs`, a completions call's `logprobs`, `n_probs`...: the largest number)."""
    entries = 0
    for name, value in payload.items():
        if ("logprob" in name or name == "n_probs") and _asks(value):
            entries = max(entries, 1 + _count(value))
    return entries


def _prompts(payload: Mapping[str, Any]) -> int:
    """How many prompts a completions call sends: a list of texts or token lists is a batch."""
    prompt = payload.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        return len(prompt)
    return 1


def _embeddings(payload: Mapping[str, Any]) -> int:
    data = payload.get("input")
    inputs = len(data) if isinstance(data, list) and data and not isinstance(data[0], int) else 1
    dimensions = _count(payload.get("dimensions")) or EMBEDDING_DIMENSIONS
    return FRAME_BYTES + inputs * (CHOICE_BYTES + dimensions * FLOAT_BYTES)


def _asks(value: object) -> bool:
    """Whether an option is on, as the input guard reads it: anything but null and false."""
    return value is not None and value is not False


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

"""What an imported model's files must be for the hf-causal worker to load them.

One parser, used twice: by the gateway when a model is imported (a file that
fails here is refused with a 400 and never stored) and by the worker when it
loads the files (defence in depth, and the same answer for models imported
before these checks existed).  So the import can never accept what the worker
then refuses, which would leave the worker restarting on a bad artifact.
Nothing here imports torch.

The files come from whoever built the model: untrusted input.  Every JSON
document is bounded in size before it is parsed and in nesting depth after
(orjson itself stops at 1024 levels with an error, never a RecursionError).

Safetensors (https://huggingface.co/docs/safetensors/index#format): an 8-byte
little-endian header length N, N bytes of a UTF-8 JSON object (tensor name
to ``{"dtype", "shape", "data_offsets": [begin, end]}``, and an optional
``"__metadata__"`` object of strings), then the data buffer, which offsets
count from.  Checked like the safetensors library does, and stricter:

- only the dtypes the worker can load (`DTYPE_SIZES`);
- a shape of at most `MAX_RANK` non-negative integers, and a byte range of
  exactly its element count times the dtype's size;
- the ranges, in order, tile the buffer exactly: no gap, no overlap, nothing
  before the first or after the last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import orjson

# The worker's torch dtypes (`hf_causal`), with their sizes in bytes; a test keeps both equal.
DTYPE_SIZES: Final = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
MAX_HEADER_BYTES: Final = 100 << 20  # the safetensors library's own limit
MAX_RANK: Final = 8
MAX_NAME_CHARS: Final = 1024
MAX_JSON_DEPTH: Final = 64
MAX_CONFIG_BYTES: Final = 1 << 20
MAX_SIDE_FILE_BYTES: Final = 64 << 20  # tokenizer.json, vocab.json: tens of MB at most
_ENTRY_KEYS: Final = frozenset({"dtype", "shape", "data_offsets"})
_SHOWN: Final = 60  # characters of a tensor name shown in an error


class ModelFormatError(ValueError):
    """A model file is malformed or not loadable by the worker; the message says how."""


@dataclass(frozen=True, slots=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # in the data buffer
    end: int

    @property
    def count(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


# JSON --------------------------------------------------------------------------------


def load_json(data: bytes | bytearray | memoryview, *, max_bytes: int) -> object:
    """Parse a JSON document of at most `max_bytes` and `MAX_JSON_DEPTH` levels."""
    if len(data) > max_bytes:
        raise ModelFormatError(f"it is larger than {max_bytes} bytes")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ModelFormatError("it is not valid JSON (or nests too deeply)") from None
    check_depth(value, MAX_JSON_DEPTH)
    return value


def check_depth(value: object, limit: int) -> None:
    """Refuse a value nested deeper than `limit` (iteratively: no recursion to exhaust)."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise ModelFormatError(f"it nests deeper than {limit} levels")
        pending.extend((child, depth + 1) for child in children)


def check_config(value: object) -> Mapping[str, object]:
    """A config.json the worker can build a model from: a `model_type`, token ids as ints.

    An absent `eos_token_id` may still be the architecture's default, so only a
    present one is checked; what only the architecture can tell (do the weights
    fit it?) is the worker's to find, and the supervisor gives up on a worker
    that keeps failing to start.
    """
    if not isinstance(value, dict) or not isinstance(value.get("model_type"), str):
        raise ModelFormatError("it must be an object with a string 'model_type'")
    eos = value.get("eos_token_id")
    ids = eos if isinstance(eos, list) else [eos]
    if eos is not None and not (ids and all(_is_size(i) for i in ids)):
        raise ModelFormatError("its 'eos_token_id' must be a token id or a list of them")
    return value


# Safetensors -------------------------------------------------------------------------


def parse_header(data: bytes | bytearray | memoryview) -> tuple[int, list[TensorEntry]]:
    """The data buffer's offset in `data` and every tensor, in buffer order, all checked."""
    view = memoryview(data)
    if len(view) < 8:
        raise ModelFormatError("it is shorter than a safetensors header")
    size = int.from_bytes(view[:8], "little")
    if not 2 <= size <= min(MAX_HEADER_BYTES, len(view) - 8) or view[8] != ord("{"):
        raise ModelFormatError("its header length or start is malformed")
    header = load_json(view[8 : 8 + size], max_bytes=MAX_HEADER_BYTES)
    if not isinstance(header, dict):
        raise ModelFormatError("its header is not a JSON object")
    _check_metadata(header.get("__metadata__", {}))
    entries = [_entry(name, raw) for name, raw in header.items() if name != "__metadata__"]
    entries.sort(key=lambda e: (e.begin, e.end))
    _check_tiling(entries, len(view) - 8 - size)
    return 8 + size, entries


def _check_metadata(metadata: object) -> None:
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFormatError("its '__metadata__' must map strings to strings")


def _entry(name: str, raw: object) -> TensorEntry:
    shown = repr(name[:_SHOWN])
    if len(name) > MAX_NAME_CHARS:
        raise ModelFormatError(f"tensor {shown}…: the name is longer than {MAX_NAME_CHARS}")
    if not isinstance(raw, dict) or set(raw) != _ENTRY_KEYS:
        raise ModelFormatError(f"tensor {shown} must have exactly {sorted(_ENTRY_KEYS)}")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise ModelFormatError(
            f"tensor {shown}: dtype {str(dtype)[:16]!r} cannot be loaded "
            f"(accepted: {', '.join(DTYPE_SIZES)})"
        )
    if not (isinstance(shape, list) and len(shape) <= MAX_RANK and all(map(_is_size, shape))):
        raise ModelFormatError(
            f"tensor {shown}: the shape must be at most {MAX_RANK} non-negative integers"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_size, offsets))):
        raise ModelFormatError(f"tensor {shown}: 'data_offsets' must be two offsets")
    entry = TensorEntry(name, dtype, tuple(shape), offsets[0], offsets[1])
    if entry.end - entry.begin != entry.count * DTYPE_SIZES[dtype]:
        raise ModelFormatError(
            f"tensor {shown}: its byte range does not hold shape {list(shape)} of {dtype}"
        )
    return entry


def _check_tiling(entries: list[TensorEntry], buffer_bytes: int) -> None:
    """The ranges, in order, cover the buffer exactly once."""
    position = 0
    for entry in entries:
        if entry.begin != position:
            what = "overlaps another" if entry.begin < position else "leaves a gap before it"
            raise ModelFormatError(f"tensor {entry.name[:_SHOWN]!r}: its byte range {what}")
        position = entry.end
    if position != buffer_bytes:
        raise ModelFormatError(
            f"its tensors cover {position} bytes of a {buffer_bytes}-byte data buffer"
        )


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

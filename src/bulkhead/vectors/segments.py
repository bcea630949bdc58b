"""The plaintext of one sealed chunk segment: the vectors and the texts of up to `SEGMENT` chunks.

Layout (integers big-endian): ``dim u32 ‖ count u32 ‖ count*dim float32 (little-endian) ‖
JSON array of the texts``.  It exists only in memory, on its way into `crypto.encrypt`
and out of `crypto.decrypt`; the associated data of the envelope names tenant, store,
file and segment (`store.vectors`).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import orjson

from bulkhead.errors import IntegrityFailure

if TYPE_CHECKING:
    from bulkhead.vectors.index import Matrix

SEGMENT = 256
_HEAD = struct.Struct(">II")


def encode(vectors: Matrix, texts: list[str]) -> bytes:
    import numpy as np  # with the first vector store (`vectors.index`)

    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise ValueError("one vector per text")
    count, dim = vectors.shape
    body = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    return _HEAD.pack(dim, count) + body + orjson.dumps(texts)


def decode(data: bytes) -> tuple[Matrix, list[str]]:
    import numpy as np

    try:
        dim, count = _HEAD.unpack_from(data)
        end = _HEAD.size + 4 * dim * count
        vectors = np.frombuffer(data, dtype="<f4", count=dim * count, offset=_HEAD.size)
        texts = orjson.loads(data[end:])
    except (struct.error, ValueError, orjson.JSONDecodeError):
        raise IntegrityFailure("A vector store segment is malformed.") from None
    if not isinstance(texts, list) or len(texts) != count:
        raise IntegrityFailure("A vector store segment is malformed.")
    return vectors.reshape(count, dim).astype(np.float32), [str(t) for t in texts]

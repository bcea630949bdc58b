"""A large JSON body parsed in bounded pieces, so that no parse holds the interpreter lock for long.

orjson parses a body in one C call that holds the interpreter lock from start
to end: for the largest bodies the gateway accepts (8 MiB of text, or a
million values) that is 10 to 25 ms in which the event loop cannot run,
whichever thread parses.  `loads` gives what `orjson.loads` gives (the same
value, or a `JSONDecodeError` for the same bodies) from many orjson calls of
at most about `piece` bytes each:

* the body's layout is found first with numpy (`_jsonlayout`), a slice at a time: how deep
  each byte is nested, where the strings are, and where the commas, colons
  and closing brackets are (sorted positions: what lies within a container
  is found by a binary search, not by reading it again at every level);
* a container larger than a piece is split between its members: a run of
  small members is parsed in one call (wrapped in the container's brackets),
  a large member on its own, the same way;
* a string larger than a piece (a long prompt) is decoded in pieces cut
  where no escape sequence, surrogate pair or UTF-8 character is split,
  and joined.

Every piece is parsed by orjson and the pieces' separators are exactly the
commas the layout found, so a malformed body is refused as the whole parse
would refuse it; what the layout alone can tell (brackets that do not match,
text after the value) it refuses itself.  Callers bound the body's shape
first (`jsonbody.check_shape`), which bounds how deep this recurses.
"""

from __future__ import annotations

from typing import Any

import orjson

PIECE = 64 * 1024


def loads(body: bytes, *, piece: int = PIECE) -> Any:
    """`orjson.loads(body)`, in calls over at most about `piece` bytes of it each."""
    if len(body) <= piece:
        return orjson.loads(body)
    # The layout is found with numpy (some 16 MB and 0.1 s to import): loaded with the first
    # body that needs it, not at every start-up.
    from bulkhead.web import _jsonlayout

    return _jsonlayout.loads_large(body, piece)

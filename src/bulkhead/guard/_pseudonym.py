"""The per-request pseudonym vault: placeholders go to the model, real values come back.

A vault lives for one request and holds the only copy of the values it
replaced.  Like the key objects in `bulkhead.crypto` it is hard to leak by
accident (STYLE rule 11): `repr` and `str` show a count, and it refuses
pickling and copying, so it cannot end up in a log line, a cache or a
retained exchange without someone writing code to take it apart.
"""

from __future__ import annotations

import re
from typing import NoReturn, SupportsIndex

from bulkhead.guard._entities import Entity

PLACEHOLDER = re.compile(r"<\s*([A-Za-z][A-Za-z_]*?)_([0-9]{1,4})\s*>")
"""`<EMAIL_1>`: an entity label and a per-request counter.  The pattern also
takes what models sometimes make of one: another case, inner spaces."""


class PseudonymVault:
    """Maps each value to one stable placeholder per request, and placeholders back."""

    __slots__ = ("__by_placeholder", "__by_value", "__counts")

    def __init__(self) -> None:
        self.__by_value: dict[tuple[Entity, str], str] = {}
        self.__by_placeholder: dict[str, str] = {}
        self.__counts: dict[Entity, int] = {}

    def placeholder_for(self, entity: Entity, value: str) -> str:
        """The placeholder for `value`; the same value gets the same placeholder each time."""
        key = (entity, value)
        found = self.__by_value.get(key)
        if found is not None:
            return found
        count = self.__counts.get(entity, 0) + 1
        self.__counts[entity] = count
        placeholder = f"<{entity.label}_{count}>"
        self.__by_value[key] = placeholder
        self.__by_placeholder[placeholder] = value
        return placeholder

    def lookup(self, placeholder: str) -> str | None:
        """The value behind a placeholder as the model wrote it, or None if it is not ours."""
        m = PLACEHOLDER.fullmatch(placeholder)
        if m is None:
            return None
        return self.__by_placeholder.get(f"<{m.group(1).upper()}_{m.group(2)}>")

    def restore(self, text: str) -> str:
        """Put the real values back in a complete (non-streamed) text."""
        if not self.__by_placeholder or "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self.lookup(m.group()) or m.group(), text)

    def __len__(self) -> int:
        return len(self.__by_placeholder)

    def __bool__(self) -> bool:
        return bool(self.__by_placeholder)

    def __repr__(self) -> str:
        return f"PseudonymVault({len(self)} values)"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("PseudonymVault cannot be pickled: it holds a request's personal data")

    def __copy__(self) -> NoReturn:
        raise TypeError("PseudonymVault cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("PseudonymVault cannot be copied")

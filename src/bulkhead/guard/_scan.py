"""One scan for every enabled entity: the detectors that matter, their findings merged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from bulkhead.guard._entities import Entity, Finding, resolve_overlaps
from bulkhead.guard._pii import Detector, numeric_windows, pii_detectors
from bulkhead.guard._secrets import secret_detectors


class EntityScanner:
    """Finds the entities in `entities` (all by default); detectors for others never run."""

    def __init__(
        self,
        entities: Iterable[Entity] = tuple(Entity),
        *,
        phone_regions: tuple[str, ...] = ("CN", "US", "GB"),
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        wanted = frozenset(entities)
        # Secrets come first so that, where spans tie, a credential wins over a
        # number inside it; within each group the order is the detectors' own.
        every = (*secret_detectors(), *pii_detectors(phone_regions=phone_regions, today=today))
        chosen = [d for d in every if d.entities & wanted]
        self.entities = wanted
        self._whole: tuple[Detector, ...] = tuple(d for d in chosen if not d.numeric)
        self._numeric: tuple[Detector, ...] = tuple(d for d in chosen if d.numeric)

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in `text`, in order."""
        if not text:
            return []
        found = [f for d in self._whole for f in d.find(text)]
        if self._numeric:
            for start, end in numeric_windows(text):
                found.extend(f for d in self._numeric for f in d.find(text, start, end))
        found = [f for f in found if f.entity in self.entities]
        return resolve_overlaps(found) if len(found) > 1 else found

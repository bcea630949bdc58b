"""The plan the supervisor hands a sandboxed process: what to apply, as JSON on its argv.

The plan holds paths, numbers and feature names, never a secret, so it may appear in
``ps`` output.  It is the whole contract between the supervisor (which decides) and
`_enter` (which applies, as the first thing the new process does).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from bulkhead.runtime.sandbox._profile import Feature


@dataclass(frozen=True, slots=True)
class Exposure:
    """`paths` (each inside `over`) stay visible when an empty, world-traversable tmpfs
    is mounted on `over`, a directory the worker's uid could not otherwise enter."""

    over: str
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    features: frozenset[Feature]
    require: bool = False
    uid: int | None = None
    cgroup_procs: str | None = None
    # (name in the `resource` module, soft, hard)
    rlimits: tuple[tuple[str, int, int], ...] = ()
    expose: tuple[Exposure, ...] = ()
    hide: tuple[str, ...] = ()
    # Landlock: read-only trees, the one writable tree, device files opened read-write.
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    landlock_abi: int = 0

    def to_json(self) -> str:
        data = asdict(self)
        data["features"] = sorted(self.features)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data: dict[str, Any] = json.loads(text)
        return cls(
            features=frozenset(Feature(f) for f in data["features"]),
            require=bool(data["require"]),
            uid=data["uid"],
            cgroup_procs=data["cgroup_procs"],
            rlimits=tuple((str(n), int(s), int(h)) for n, s, h in data["rlimits"]),
            expose=tuple(Exposure(e["over"], tuple(e["paths"])) for e in data["expose"]),
            hide=tuple(data["hide"]),
            read=tuple(data["read"]),
            write=tuple(data["write"]),
            devices=tuple(data["devices"]),
            landlock_abi=int(data["landlock_abi"]),
        )

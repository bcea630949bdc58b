"""Which device each local worker runs on: the tier decides, tenants never share one.

`place` takes the discovered devices and the workers the catalog wants (each
with its tenant and tier) and pins them:

- a **mig** tenant's workers go to a MIG instance of their own (one tenant
  may run several workers on it);
- a **dedicated** tenant's workers go to a whole GPU of their own, MIG off;
- **shared** workers (shared models, and shared-tier tenants' private ones)
  go to the GPUs left over, MIG off, each with an equal memory fraction.

A worker for which no device of the right kind is free runs on the CPU (no
GPU visible at all), and the reason is logged; it is never moved onto another
tenant's device.  The result is checked with `check_exclusive` before use.
Placement is deterministic: same devices and workers, same answer, so a
catalog reload does not shuffle running workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bulkhead.domain import Tier
from bulkhead.runtime.gpu._assign import Device, DeviceAssignment, assign, check_exclusive

log = logging.getLogger("bulkhead.gpu")
SHARED_POOL = "_shared"


@dataclass(frozen=True, slots=True)
class Want:
    """One worker to place: its key (deployment id), owner tenant (None: shared) and tier."""

    key: str
    tenant: str | None
    tier: Tier


def place(found: Sequence[Device], wants: Sequence[Want]) -> dict[str, DeviceAssignment | None]:
    migs = sorted((d for d in found if d.is_mig), key=lambda d: d.uuid)
    gpus = sorted((d for d in found if not d.is_mig and not d.mig_enabled), key=lambda d: d.uuid)
    owned: dict[str, Device] = {}  # tenant id -> its device
    out: dict[str, DeviceAssignment | None] = {}
    shared: list[Want] = []
    for want in sorted(wants, key=lambda w: (w.tier.value, w.tenant or "", w.key)):
        if want.tenant is None or want.tier is Tier.SHARED:
            shared.append(want)
            continue
        pool = migs if want.tier is Tier.MIG else gpus
        device = owned.get(want.tenant) or _take(pool)
        if device is None:
            log.warning("no free %s device for %s: it runs on the CPU", want.tier.value, want.key)
            out[want.key] = None
            continue
        owned[want.tenant] = device
        out[want.key] = assign(want.tier, device)
    out.update(_share(gpus, shared))
    check_exclusive(
        (w.tenant or SHARED_POOL, a) for w in wants if (a := out.get(w.key)) is not None
    )
    return out


def _take(pool: list[Device]) -> Device | None:
    return pool.pop(0) if pool else None


def _share(gpus: list[Device], wants: list[Want]) -> dict[str, DeviceAssignment | None]:
    if not wants:
        return {}
    if not gpus:
        return {w.key: None for w in wants}
    per_gpu: dict[str, list[Want]] = {g.uuid: [] for g in gpus}
    for i, want in enumerate(wants):
        per_gpu[gpus[i % len(gpus)].uuid].append(want)
    out: dict[str, DeviceAssignment | None] = {}
    for gpu in gpus:
        here = per_gpu[gpu.uuid]
        for want in here:
            out[want.key] = assign(Tier.SHARED, gpu, memory_fraction=1 / len(here))
    return out

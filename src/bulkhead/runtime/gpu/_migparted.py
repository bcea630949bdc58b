"""The plan as an NVIDIA mig-parted configuration (`version: v1`).

The format is that of github.com/NVIDIA/mig-parted (`api/spec/v1/spec.go`,
`examples/config.yaml`): a `mig-configs` map from a config name to a list of
entries, each with `devices` (`all` or a list of GPU indices), `mig-enabled`
and, when enabled, `mig-devices` (profile name → count).  mig-parted picks
the placements itself; the plan only proves that one exists.  Applying the
config (`nvidia-mig-parted apply -f FILE -c NAME`) is the operator's step:
Bulkhead never changes MIG mode or instances.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bulkhead.errors import InvalidRequest
from bulkhead.runtime.gpu._planner import MigPlan

DEFAULT_CONFIG_NAME = "bulkhead"
_CONFIG_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def mig_parted_config(
    plan: MigPlan, *, name: str = DEFAULT_CONFIG_NAME, devices: Sequence[int] | None = None
) -> str:
    """The plan as mig-parted v1 YAML, GPU n of the plan on device `devices[n]` (default n)."""
    if not _CONFIG_NAME.match(name):
        raise InvalidRequest(
            "A mig-parted config name is lower-case letters, digits, '.', '_' or '-'.",
            param="name",
        )
    indices = _device_indices(plan, devices)
    lines = ["version: v1", "mig-configs:", f"  {name}:"]
    for group, counts in _groups(plan, indices):
        lines.append(f"    - devices: [{', '.join(str(i) for i in group)}]")
        lines.append("      mig-enabled: true")
        if not counts:
            lines.append("      mig-devices: {}")
            continue
        lines.append("      mig-devices:")
        lines.extend(f'        "{profile}": {count}' for profile, count in counts)
    return "\n".join(lines) + "\n"


def _device_indices(plan: MigPlan, devices: Sequence[int] | None) -> tuple[int, ...]:
    if devices is None:
        return tuple(range(len(plan.layouts)))
    indices = tuple(devices)
    if len(indices) != len(plan.layouts) or len(set(indices)) != len(indices):
        raise InvalidRequest(
            f"Name {len(plan.layouts)} distinct device indices, one per planned GPU.",
            param="devices",
        )
    if any(i < 0 for i in indices):
        raise InvalidRequest("Device indices are never negative.", param="devices")
    return indices


def _groups(
    plan: MigPlan, indices: tuple[int, ...]
) -> list[tuple[list[int], tuple[tuple[str, int], ...]]]:
    """GPUs with the same instance counts share one entry, in order of their first device."""
    groups: dict[tuple[tuple[str, int], ...], list[int]] = {}
    for layout, device in zip(plan.layouts, indices, strict=True):
        groups.setdefault(_counts(plan, layout.counts()), []).append(device)
    return [(sorted(group), counts) for counts, group in groups.items()]


def _counts(plan: MigPlan, counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    """Counts in catalog order, so the same layout always prints the same way."""
    order = [p.name for p in plan.model.profiles]
    return tuple((name, counts[name]) for name in order if name in counts)

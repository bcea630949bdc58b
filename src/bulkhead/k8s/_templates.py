"""The pod templates inside rendered workloads, wherever each kind keeps its one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bulkhead.k8s._selectors import describe, meta, namespace_of

_TEMPLATE_AT: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class PodTemplate:
    """One pod template: the workload that holds it, where, and its metadata and spec."""

    owner: Mapping[str, Any]
    path: str
    """Where the template sits in its owner (`spec.template`; empty for a bare Pod)."""
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]

    @property
    def namespace(self) -> str:
        return namespace_of(self.owner)

    def where(self, field: str) -> str:
        """`Kind ns/name: <path>.<field>` naming one field of this template in a finding."""
        prefix = f"{self.path}." if self.path else ""
        return f"{describe(self.owner)}: {prefix}{field}"

    def containers(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """`(spec path, container)` for containers, init containers and ephemeral containers."""
        for group in CONTAINER_LISTS:
            for index, container in enumerate(self.spec.get(group) or ()):
                yield f"spec.{group}[{index}]", container


def pod_templates(objects: Sequence[Mapping[str, Any]]) -> list[PodTemplate]:
    """Every pod template in `objects`: bare Pods and the templates of the workload kinds."""
    found: list[PodTemplate] = []
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Pod":
            found.append(PodTemplate(obj, "", meta(obj), obj.get("spec") or {}))
            continue
        steps = _TEMPLATE_AT.get(str(kind))
        if steps is None:
            continue
        node: Any = obj
        for step in steps:
            node = node.get(step) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            metadata, spec = node.get("metadata") or {}, node.get("spec") or {}
            found.append(PodTemplate(obj, ".".join(steps), metadata, spec))
    return found

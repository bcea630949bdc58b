"""Apply, diff and prune rendered objects on a cluster, with server-side apply.

Takes the `list[dict]` any renderer function returns.  Every object is sent as
a server-side apply patch (`PATCH`, `Content-Type: application/apply-patch+yaml`,
`fieldManager=bulkhead`; `force=true` only when asked; `dryRun=All` for a
server-side dry run): the API server merges it and records Bulkhead as the
owner of the fields it sets (Kubernetes "Server-Side Apply").

Prune deletes only what carries `app.kubernetes.io/managed-by=bulkhead`: the
list is asked with that label selector and each answer is checked again here,
so an object without the label is never touched.  A label is only a claim (an
overlay's `commonLabels` copies it anywhere), so prune also deletes only what
Bulkhead could have rendered: a namespace named `bh-<tenant>-serve|train`, an
object inside one, and elsewhere an object named `bh-…`.  Namespaces go last,
with `propagationPolicy=Foreground`.

    cluster = Cluster(KubeApi(connect(Connection(kubeconfig=path))))
    report = cluster.apply(objects, dry_run=False)
    report.ok, report.counts()
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkhead.errors import BulkheadError
from bulkhead.k8s._client import ClusterError, Connection, KubeApi, connect
from bulkhead.k8s._resources import (
    MANAGED_BY,
    MANAGER,
    OWNED,
    RESOURCE_TYPES,
    TENANT_LABEL,
    ObjectRef,
    apply_order,
    object_path,
    ref,
)

__all__ = [
    "MANAGED_BY",
    "MANAGER",
    "OWNED",
    "PROTECTED_NAMESPACES",
    "TENANT_LABEL",
    "Cluster",
    "ClusterError",
    "Connection",
    "KubeApi",
    "ObjectDiff",
    "ObjectRef",
    "Outcome",
    "Report",
    "connect",
    "object_path",
]

log = logging.getLogger("bulkhead.k8s")
log.addHandler(logging.NullHandler())  # a library's logger: silent unless the caller sets one up
APPLY_PATCH = "application/apply-patch+yaml"
# Namespaces prune never deletes: the platform's own (its default name) and the system's.
PROTECTED_NAMESPACES = frozenset(
    {"bulkhead", "default", "kube-system", "kube-public", "kube-node-lease"}
)
# The namespaces Bulkhead renders (`bulkhead.k8s.render.names`), and the prefix of the
# names it gives its objects outside them (the platform namespace's `bh-mig-parted`).
TENANT_NAMESPACE = re.compile(r"^bh-[a-z0-9]([-a-z0-9]*[a-z0-9])?-(serve|train)$")
OWN_PREFIX = "bh-"
# What the server sets on every object and a diff would only show as noise.
_SERVER_FIELDS = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one object: created, applied, deleted, skipped or failed (why)."""

    ref: ObjectRef
    action: str
    error: str | None = None
    dry_run: bool = False

    def line(self) -> str:
        suffix = " (server dry run)" if self.dry_run else ""
        if self.error:
            return f"{self.ref}: {self.action}: {self.error}"
        return f"{self.ref} {self.action}{suffix}"


@dataclass(slots=True)
class Report:
    """The outcomes of one apply or prune, in order."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(o.action == "failed" for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        return dict(Counter(o.action for o in self.outcomes))

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        level = logging.WARNING if outcome.error else logging.INFO
        log.log(level, "k8s %s", outcome.line())


@dataclass(frozen=True, slots=True)
class ObjectDiff:
    """A unified diff from the live object to what applying would make of it."""

    ref: ObjectRef
    text: str
    error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.text)


class Cluster:
    """One cluster, through `KubeApi`; Bulkhead's field manager by default."""

    def __init__(
        self,
        api: KubeApi,
        *,
        field_manager: str = MANAGER,
        protected: frozenset[str] = PROTECTED_NAMESPACES,
    ):
        self.api = api
        self.field_manager = field_manager
        self.protected = protected

    @classmethod
    def connect(
        cls, connection: Connection, *, protected: frozenset[str] = PROTECTED_NAMESPACES
    ) -> Cluster:
        return cls(KubeApi(connect(connection)), protected=protected)

    def get(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live object at the rendered object's place, or None when there is none."""
        try:
            return self.api.request("GET", object_path(obj))[1]
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise

    def apply_one(
        self, obj: Mapping[str, Any], *, force: bool = False, dry_run: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """One server-side apply: the status (201 created, 200 applied) and the result."""
        query = [("fieldManager", self.field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        path = object_path(obj)
        return self.api.request(
            "PATCH", path, query=query, body=dict(obj), content_type=APPLY_PATCH
        )

    def apply(
        self, objects: Sequence[Mapping[str, Any]], *, force: bool = False, dry_run: bool = False
    ) -> Report:
        """Apply every object (namespaces first); one failure does not stop the others.

        A server dry run skips the objects of a namespace it would create: the server
        answers 404 for an object in a namespace that does not exist yet."""
        report = Report()
        only_dry = set()  # namespaces a dry run "created": their objects cannot be checked yet
        for obj in apply_order([dict(o) for o in objects]):
            try:
                which = ref(obj)
            except BulkheadError as exc:
                report.add(Outcome(_unknown(obj), "failed", exc.message, dry_run))
                continue
            if which.namespace in only_dry:
                report.add(Outcome(which, "skipped", None, dry_run))
                continue
            try:
                status, _ = self.apply_one(obj, force=force, dry_run=dry_run)
            except ClusterError as exc:
                report.add(Outcome(which, "failed", exc.message, dry_run))
                continue
            report.add(Outcome(which, "created" if status == 201 else "applied", None, dry_run))
            if dry_run and status == 201 and which.kind == "Namespace":
                only_dry.add(which.name)
        return report

    def diff(self, objects: Sequence[Mapping[str, Any]]) -> list[ObjectDiff]:
        """For each object, the live one against the server's dry-run apply of it (against
        the rendered object itself where nothing is live yet): as `kubectl diff` does."""
        diffs = []
        for obj in apply_order([dict(o) for o in objects]):
            try:
                which = ref(obj)
            except BulkheadError as exc:
                diffs.append(ObjectDiff(_unknown(obj), "", exc.message))
                continue
            try:
                live = self.get(obj)
                after = self.apply_one(obj, dry_run=True)[1] if live is not None else obj
            except ClusterError as exc:
                diffs.append(ObjectDiff(which, "", exc.message))
                continue
            diffs.append(ObjectDiff(which, unified(which, live, after)))
        return diffs

    def owned(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every object of each kind Bulkhead renders that carries its owner label (and the
        tenant's, when given), across all namespaces, with apiVersion and kind filled in."""
        selector = OWNED + (f",{TENANT_LABEL}={tenant}" if tenant else "")
        found = []
        for rtype in RESOURCE_TYPES:
            answer = self.api.request(
                "GET", rtype.collection(), query=[("labelSelector", selector)]
            )
            for item in answer[1].get("items") or []:
                item = {**item, "apiVersion": rtype.api_version, "kind": rtype.kind}
                if _carries(item, tenant):
                    found.append(item)
        return found

    def prune(
        self,
        keep: Sequence[Mapping[str, Any]],
        *,
        tenant: str | None = None,
        dry_run: bool = False,
    ) -> Report:
        """Delete what Bulkhead owns (of `tenant`, when given) and `keep` no longer has.

        An object inside a namespace that is itself pruned goes with its namespace.  The
        namespaces in `protected` (the platform's own, the system's) are never deleted,
        whatever labels they carry.
        """
        wanted = {_ref_or_unknown(o) for o in keep}
        doomed = [ref(o) for o in self.owned(tenant) if ref(o) not in wanted]
        doomed = [r for r in doomed if self._prunable(r)]
        gone_namespaces = {r.name for r in doomed if r.kind == "Namespace"}
        doomed = [r for r in doomed if r.namespace not in gone_namespaces]
        doomed.sort(key=lambda r: (r.kind == "Namespace", r))
        report = Report()
        for which in doomed:
            report.add(self._delete(which, dry_run=dry_run))
        return report

    def _prunable(self, which: ObjectRef) -> bool:
        """Whether Bulkhead could have rendered it (its owner label is checked already)."""
        if which.kind == "Namespace":
            return which.name not in self.protected and bool(TENANT_NAMESPACE.match(which.name))
        return bool(TENANT_NAMESPACE.match(which.namespace)) or which.name.startswith(OWN_PREFIX)

    def _delete(self, which: ObjectRef, *, dry_run: bool) -> Outcome:
        obj = {
            "apiVersion": which.api_version,
            "kind": which.kind,
            "metadata": {"name": which.name, "namespace": which.namespace},
        }
        query = [("propagationPolicy", "Foreground")] + ([("dryRun", "All")] if dry_run else [])
        try:
            self.api.request("DELETE", object_path(obj), query=query)
        except ClusterError as exc:
            if exc.status == 404:  # Gone already: what prune wanted.
                return Outcome(which, "deleted", None, dry_run)
            return Outcome(which, "failed", exc.message, dry_run)
        return Outcome(which, "deleted", None, dry_run)


def _carries(item: Mapping[str, Any], tenant: str | None) -> bool:
    """Checked here too, whatever the server's selector did: never touch an unowned object."""
    labels = (item.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGER:
        return False
    return tenant is None or labels.get(TENANT_LABEL) == tenant


def _ref_or_unknown(obj: Mapping[str, Any]) -> ObjectRef:
    try:
        return ref(obj)
    except BulkheadError:
        return _unknown(obj)


def _unknown(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(
        str(obj.get("apiVersion", "?")),
        str(obj.get("kind", "?")),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or "?"),
    )


def comparable(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """The object without its status and the fields only the server sets."""
    if obj is None:
        return {}
    kept = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    return {**kept, "metadata": meta} if meta or "metadata" in obj else kept


def unified(which: ObjectRef, live: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    """A readable unified diff of the two as indented, key-sorted JSON ('' when equal)."""
    before_text = _dump(comparable(live)) if live is not None else []
    after_text = _dump(comparable(after))
    lines = difflib.unified_diff(
        before_text, after_text, fromfile=f"live/{which}", tofile=f"bulkhead/{which}"
    )
    return "".join(lines)


def _dump(obj: Mapping[str, Any]) -> list[str]:
    return [line + "\n" for line in json.dumps(obj, indent=2, sort_keys=True).splitlines()]

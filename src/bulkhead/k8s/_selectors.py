"""Label selectors and the small object accessors the proofs share.

`matches` implements `metav1.LabelSelector` as the API server reads it:
`matchLabels` and every `matchExpressions` term must all hold (AND); an empty
selector (`{}`) selects everything. The operators are those of the API
(`In`, `NotIn`, `Exists`, `DoesNotExist`); `NotIn` holds for an object that
lacks the key, as in `k8s.io/apimachinery/pkg/labels`. An unknown operator
raises `ValueError` (the API server would have refused the object).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every Namespace (since 1.21) to the namespace's name."""

DEFAULT_NAMESPACE = "default"


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether `labels` satisfy the label selector (`None` and `{}` select everything)."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_expression(term, labels) for term in selector.get("matchExpressions") or ())


def _expression(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = term["key"]
    operator = term["operator"]
    values = term.get("values") or ()
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"label selector operator {operator!r} is not In, NotIn, Exists, DoesNotExist")


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object's metadata (empty when absent)."""
    value = obj.get("metadata")
    return value if isinstance(value, Mapping) else {}


def namespace_of(obj: Mapping[str, Any]) -> str:
    """The object's namespace; a namespaced object without one lands in `default`."""
    return str(meta(obj).get("namespace") or DEFAULT_NAMESPACE)


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (meta(obj).get("labels") or {}).items()}


def of_kind(objects: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [obj for obj in objects if obj.get("kind") == kind]


def namespace_labels(objects: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Each Namespace object's labels, with the implicit `kubernetes.io/metadata.name`."""
    result: dict[str, dict[str, str]] = {}
    for ns in of_kind(objects, "Namespace"):
        name = name_of(ns)
        result[name] = {**labels_of(ns), NAME_LABEL: name}
    return result


def describe(obj: Mapping[str, Any]) -> str:
    """`Kind namespace/name` (or `Kind name` for a cluster-scoped object) for findings."""
    kind = str(obj.get("kind") or "?")
    name = name_of(obj)
    namespace = meta(obj).get("namespace")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"

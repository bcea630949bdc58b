"""The reachability matrix and the pods derived from rendered workloads."""

from __future__ import annotations

from typing import Any

import pytest

from bulkhead.k8s.netpol import ContainerPort, Probe, pods_from_objects, reachability
from tests.unit.k8s.test_netpol import DB, FRONTEND, NAMESPACES, OTHER, example_policy


def test_reachability_matrix() -> None:
    """The matrix holds exactly the allowed edges of the documented example policy."""
    objects = [*NAMESPACES, example_policy()]
    matrix = reachability(
        objects, [DB, FRONTEND, OTHER], ["172.17.0.9", "10.0.0.5"], [Probe(6379), Probe(5978)]
    )
    assert matrix.sources_of(DB) == {"default/frontend", "172.17.0.9"}
    assert matrix.destinations_of(DB) == {"10.0.0.5"}
    assert matrix.allows(DB, "10.0.0.5", 5978)
    assert not matrix.allows(DB, "10.0.0.5", 6379)
    assert matrix.reaches(OTHER, FRONTEND) and not matrix.reaches(OTHER, DB)
    assert "default/frontend -> default/db 6379/TCP" in matrix.render().splitlines()
    assert not any(s == d for s, d, _, _ in matrix.edges)
    assert not any(s[0].isdigit() and d[0].isdigit() for s, d, _, _ in matrix.edges)
    assert matrix.touching(["default/db"]).edges == {
        e for e in matrix.edges if "default/db" in (e[0], e[1])
    }
    with pytest.raises(ValueError):
        reachability(objects, [DB, DB])


def test_pods_from_rendered_workloads() -> None:
    """Pods come from each kind's pod template: labels, namespace, container ports."""

    def template(labels: dict[str, str], ports: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "ports": ports}]},
        }

    objects: list[dict[str, Any]] = [
        {
            "kind": "Deployment",
            "metadata": {"name": "vllm", "namespace": "bh-a-serve"},
            "spec": {
                "template": template({"app": "vllm"}, [{"containerPort": 8000, "name": "http"}])
            },
        },
        {
            "kind": "StatefulSet",
            "metadata": {"name": "vec", "namespace": "bh-a-serve"},
            "spec": {
                "template": template({"app": "vec"}, [{"containerPort": 6333, "protocol": "UDP"}])
            },
        },
        {
            "kind": "CronJob",
            "metadata": {"name": "cj", "namespace": "bh-a-train"},
            "spec": {"jobTemplate": {"spec": {"template": template({"app": "cj"}, [])}}},
        },
        {
            "kind": "Pod",
            "metadata": {"name": "bare", "labels": {"app": "bare"}},
            "spec": {"containers": []},
        },
        {"kind": "Service", "metadata": {"name": "svc", "namespace": "bh-a-serve"}},
    ]
    pods = {p.key: p for p in pods_from_objects(objects)}
    assert set(pods) == {"bh-a-serve/vllm", "bh-a-serve/vec", "bh-a-train/cj", "default/bare"}
    assert pods["bh-a-serve/vllm"].ports == (ContainerPort(8000, "http"),)
    assert pods["bh-a-serve/vllm"].labels == {"app": "vllm"}
    assert pods["bh-a-serve/vec"].ports == (ContainerPort(6333, "", "UDP"),)
    assert pods["default/bare"].labels == {"app": "bare"}

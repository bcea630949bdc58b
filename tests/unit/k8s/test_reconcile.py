"""reconcile_once and the watch loop, with a catalog in a dict and the recording test
double of the API server (not a cluster)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.k8s.cluster import Cluster, Connection
from bulkhead.k8s.reconcile import ReconcileResult, next_delay, reconcile_once, watch
from bulkhead.testing.kube_api import RecordingKubeApi
from tests.support.kube import TOKEN, kubeconfig, stand_in_render


class Catalog:
    """The management API's three reads, from a dict; `broken` paths raise."""

    def __init__(self, tenants: dict[str, str]):
        self.tenants = dict(tenants)  # name -> tier
        self.rpm: dict[str, int] = {}
        self.broken: set[str] = set()

    def get(self, path: str) -> Any:
        if path in self.broken:
            raise ConnectionError(f"cannot reach {path}")
        if path == "/admin/v1/tenants":
            return {"data": [{"name": n, "tier": t} for n, t in self.tenants.items()]}
        if path == "/admin/v1/models":
            return {"data": []}
        name = path.split("/")[4]
        return {"limits": {"requests_per_minute": {"value": self.rpm.get(name, 600)}}}


@pytest.fixture
def api() -> Iterator[RecordingKubeApi]:
    with RecordingKubeApi(token=TOKEN) as double:
        yield double


@pytest.fixture
def cluster(api: RecordingKubeApi, tmp_path: Path) -> Cluster:
    return Cluster.connect(Connection(kubeconfig=str(kubeconfig(tmp_path / "kc", api))))


def namespaces(api: RecordingKubeApi) -> set[str]:
    return {o["metadata"]["name"] for o in api.objects("Namespace")}


def test_created_retiered_and_deleted_tenants(api: RecordingKubeApi, cluster: Cluster) -> None:
    catalog = Catalog({"a": "shared"})
    first = reconcile_once(catalog, stand_in_render, cluster)
    assert first.ok and first.counts() == {"created": 3}
    assert namespaces(api) == {"bh-a-serve"}

    catalog.tenants["b"] = "shared"
    assert reconcile_once(catalog, stand_in_render, cluster).counts() == {
        "applied": 3,
        "created": 3,
    }
    catalog.tenants["a"] = "dedicated"
    catalog.rpm["a"] = 42
    assert reconcile_once(catalog, stand_in_render, cluster).ok
    quota = api.find("ResourceQuota", "tenant-quota", "bh-a-serve")
    assert quota is not None and quota["spec"]["hard"]["pods"] == "50"
    assert quota["metadata"]["annotations"] == {"bulkhead.dev/requests-per-minute": "42"}

    del catalog.tenants["a"]
    gone = reconcile_once(catalog, stand_in_render, cluster)
    assert gone.ok and gone.counts() == {"applied": 3, "pruned_deleted": 1}
    assert namespaces(api) == {"bh-b-serve"}
    assert api.objects("ResourceQuota") == [api.find("ResourceQuota", "tenant-quota", "bh-b-serve")]


def test_an_empty_catalog_prunes_nothing_unless_allowed(
    api: RecordingKubeApi, cluster: Cluster
) -> None:
    catalog = Catalog({"a": "shared"})
    assert reconcile_once(catalog, stand_in_render, cluster).ok
    del catalog.tenants["a"]  # a key for the wrong, or a fresh, management API looks like this
    refused = reconcile_once(catalog, stand_in_render, cluster)
    assert not refused.ok and "lists no tenant" in (refused.error or "")
    assert namespaces(api) == {"bh-a-serve"}
    allowed = reconcile_once(catalog, stand_in_render, cluster, allow_empty=True)
    assert allowed.ok and namespaces(api) == set()


@pytest.mark.parametrize(
    "broken", ["/admin/v1/tenants", "/admin/v1/models", "/admin/v1/tenants/b/limits"]
)
def test_an_unreadable_catalog_changes_nothing(
    api: RecordingKubeApi, cluster: Cluster, broken: str
) -> None:
    catalog = Catalog({"a": "shared", "b": "shared"})
    reconcile_once(catalog, stand_in_render, cluster)
    writes = len(api.writes())
    del catalog.tenants["a"]
    catalog.broken.add(broken)
    result = reconcile_once(catalog, stand_in_render, cluster)
    assert not result.ok and "management API unreadable" in (result.error or "")
    assert len(api.writes()) == writes  # nothing applied, nothing deleted
    assert namespaces(api) == {"bh-a-serve", "bh-b-serve"}


@pytest.mark.parametrize("answer", [None, {"data": None}, {"data": ["x"]}, [1, 2]])
def test_a_nonsense_listing_is_an_unreadable_catalog(
    api: RecordingKubeApi, cluster: Cluster, answer: Any
) -> None:
    class Odd(Catalog):
        def get(self, path: str) -> Any:
            return answer if path == "/admin/v1/tenants" else super().get(path)

    result = reconcile_once(Odd({}), stand_in_render, cluster)
    assert result.error and api.writes() == []


def test_a_failing_renderer_changes_nothing(api: RecordingKubeApi, cluster: Cluster) -> None:
    reconcile_once(Catalog({"a": "shared"}), stand_in_render, cluster)
    writes = len(api.writes())

    def broken(*_: Any) -> list[dict[str, Any]]:
        raise KeyError("tier")

    result = reconcile_once(Catalog({}), broken, cluster)
    assert not result.ok and "render failed" in (result.error or "")
    assert len(api.writes()) == writes


def test_one_failed_apply_does_not_stop_the_rest(api: RecordingKubeApi, cluster: Cluster) -> None:
    api.fail("PATCH", "/api/v1/namespaces/bh-a-serve/resourcequotas/tenant-quota", 422, "Invalid")
    result = reconcile_once(Catalog({"a": "shared", "b": "shared"}), stand_in_render, cluster)
    assert not result.ok
    assert result.counts() == {"created": 5, "failed": 1}
    assert namespaces(api) == {"bh-a-serve", "bh-b-serve"}


def test_backoff_doubles_and_is_bounded() -> None:
    assert next_delay(0, 2.0, 60.0) == 2.0
    assert [next_delay(n, 2.0, 60.0) for n in (1, 2, 3, 4, 5, 6)] == [4, 8, 16, 32, 60, 60]
    assert next_delay(10_000, 2.0, 60.0) == 60.0


def test_watch_runs_until_stopped_and_survives_errors() -> None:
    stop = threading.Event()
    runs: list[ReconcileResult] = []

    def step() -> ReconcileResult:
        if len(runs) == 1:
            runs.append(ReconcileResult(error="boom"))
            raise RuntimeError("boom")
        runs.append(ReconcileResult())
        if len(runs) == 4:
            stop.set()
        return runs[-1]

    seen: list[ReconcileResult] = []
    failed = watch(step, stop=stop, interval_s=0.01, max_backoff_s=0.05, on_result=seen.append)
    assert len(runs) == 4 and failed == 1
    assert [r.ok for r in seen] == [True, False, True, True]

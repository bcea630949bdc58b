"""Apply, diff and prune against `RecordingKubeApi`, a recording test double of the API
server (not a cluster): these tests prove what Bulkhead sends and how it reads the
answers, not how a real API server behaves."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.errors import InvalidRequest
from bulkhead.k8s._resources import RESOURCE_TYPES, object_path, resource_type
from bulkhead.k8s.cluster import Cluster, ClusterError, Connection
from bulkhead.testing import kube_api
from bulkhead.testing.kube_api import RecordingKubeApi
from tests.support.kube import TOKEN, deny_all, kubeconfig, namespace, quota, tenant_objects

META = {"name": "m", "namespace": "n"}


def configmap(name: str, ns: str, labels: dict[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


@pytest.fixture
def api() -> Iterator[RecordingKubeApi]:
    with RecordingKubeApi(token=TOKEN) as double:
        yield double


@pytest.fixture
def cluster(api: RecordingKubeApi, tmp_path: Path) -> Cluster:
    return Cluster.connect(Connection(kubeconfig=str(kubeconfig(tmp_path / "kc", api))))


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        (namespace("bh-a-serve"), "/api/v1/namespaces/bh-a-serve"),
        (quota("bh-a-serve", "a"), "/api/v1/namespaces/bh-a-serve/resourcequotas/tenant-quota"),
        (
            deny_all("bh-a-serve", "a"),
            "/apis/networking.k8s.io/v1/namespaces/bh-a-serve/networkpolicies/default-deny",
        ),
        (
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "m", "namespace": "n"},
            },
            "/apis/apps/v1/namespaces/n/deployments/m",
        ),
        (
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "r", "namespace": "n"},
            },
            "/apis/rbac.authorization.k8s.io/v1/namespaces/n/rolebindings/r",
        ),
    ],
)
def test_each_object_has_its_rest_path(obj: dict, path: str) -> None:
    assert object_path(obj) == path


def test_every_rendered_kind_is_mapped_and_the_double_knows_the_same_places() -> None:
    kinds = {t.kind for t in RESOURCE_TYPES}
    assert kinds == {
        "Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "ServiceAccount", "Role",
        "RoleBinding", "Deployment", "Service", "ConfigMap",
    }  # fmt: skip
    for t in RESOURCE_TYPES:
        assert resource_type({"apiVersion": t.api_version, "kind": t.kind}) is t
        # The double's own table (from the API reference) agrees with Bulkhead's.
        assert kube_api.KINDS[(t.api_version, t.plural)] == (t.kind, t.namespaced)


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},  # no namespace
        {"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {}},
    ],
)
def test_unknown_or_incomplete_objects_are_refused(obj: dict) -> None:
    with pytest.raises(InvalidRequest):
        object_path(obj)


def test_apply_creates_with_server_side_apply(api: RecordingKubeApi, cluster: Cluster) -> None:
    objects = tenant_objects("a")[::-1]  # the namespace last: apply must still send it first
    report = cluster.apply(objects)
    assert report.ok and report.counts() == {"created": 3}
    writes = api.writes()
    assert [w.path for w in writes] == [
        "/api/v1/namespaces/bh-a-serve",
        "/apis/networking.k8s.io/v1/namespaces/bh-a-serve/networkpolicies/default-deny",
        "/api/v1/namespaces/bh-a-serve/resourcequotas/tenant-quota",
    ]
    for w in writes:
        assert w.method == "PATCH"
        assert w.content_type == "application/apply-patch+yaml"
        assert w.query == {"fieldManager": ["bulkhead"]}  # no force, no dry run
    assert api.find("ResourceQuota", "tenant-quota", "bh-a-serve")["spec"]["hard"]["pods"] == "10"
    assert writes[2].body == objects[1]  # the object itself is the apply patch


def test_second_apply_is_idempotent(api: RecordingKubeApi, cluster: Cluster) -> None:
    cluster.apply(tenant_objects("a"))
    before = api.objects()
    report = cluster.apply(tenant_objects("a"))
    assert report.ok and report.counts() == {"applied": 3}
    assert api.objects() == before  # same content, same resourceVersions


def test_force_is_sent_only_when_asked(api: RecordingKubeApi, cluster: Cluster) -> None:
    api.put(namespace("bh-a-serve", "a"))
    api.put(quota("bh-a-serve", "a", pods="99"), manager="kubectl")  # someone else's fields
    report = cluster.apply(tenant_objects("a"))
    assert not report.ok
    assert report.counts() == {"applied": 1, "failed": 1, "created": 1}  # the rest went on
    assert "409 Conflict" in next(o.error for o in report.outcomes if o.error)
    assert cluster.apply(tenant_objects("a"), force=True).ok
    assert api.writes()[-1].query == {"fieldManager": ["bulkhead"], "force": ["true"]}
    assert api.find("ResourceQuota", "tenant-quota", "bh-a-serve")["spec"]["hard"]["pods"] == "10"


def test_server_dry_run_stores_nothing(api: RecordingKubeApi, cluster: Cluster) -> None:
    report = cluster.apply(tenant_objects("a"), dry_run=True)
    assert report.ok and report.counts() == {"created": 1, "skipped": 2}
    assert api.objects() == []
    cluster.apply(tenant_objects("a"))
    before = api.objects()
    report = cluster.apply(tenant_objects("a", tier="dedicated"), dry_run=True)
    assert report.ok and report.counts() == {"applied": 3}
    assert api.objects() == before
    assert all(w.query["dryRun"] == ["All"] for w in api.writes()[:1] + api.writes()[-3:])


def test_diff_shows_what_would_change(api: RecordingKubeApi, cluster: Cluster) -> None:
    cluster.apply(tenant_objects("a"))
    writes = len(api.writes())
    diffs = {str(d.ref): d for d in cluster.diff(tenant_objects("a", tier="dedicated"))}
    assert cluster.diff(tenant_objects("a")) and not any(
        d.changed for d in cluster.diff(tenant_objects("a"))
    )
    changed = diffs["ResourceQuota/bh-a-serve/tenant-quota"]
    assert changed.changed and not changed.error
    assert '-      "pods": "10"' in changed.text and '+      "pods": "50"' in changed.text
    assert changed.text.startswith("--- live/ResourceQuota/bh-a-serve/tenant-quota\n")
    assert not diffs["Namespace/bh-a-serve"].changed
    assert all(w.query.get("dryRun") == ["All"] for w in api.writes()[writes:])  # nothing stored
    new = cluster.diff(tenant_objects("b"))
    assert all(d.changed for d in new)
    assert '+  "kind": "Namespace"' in new[0].text


def test_prune_deletes_only_owned_objects_no_longer_rendered(
    api: RecordingKubeApi, cluster: Cluster
) -> None:
    cluster.apply(tenant_objects("a") + tenant_objects("b"))
    stale = deny_all("bh-a-serve", "a")
    stale["metadata"]["name"] = "old"
    cluster.apply([stale])
    api.put(configmap("x", "bh-a-serve", labels=None))  # no owner label
    api.put(configmap("theirs", "bh-a-serve", labels={"app.kubernetes.io/managed-by": "helm"}))
    api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})
    # `a` is still rendered (without `old`), `b` is gone.
    report = cluster.prune(tenant_objects("a"))
    assert report.ok
    deleted = [(w.method, w.path, w.query) for w in api.writes() if w.method == "DELETE"]
    assert deleted == [
        (
            "DELETE",
            "/apis/networking.k8s.io/v1/namespaces/bh-a-serve/networkpolicies/old",
            {"propagationPolicy": ["Foreground"]},
        ),
        ("DELETE", "/api/v1/namespaces/bh-b-serve", {"propagationPolicy": ["Foreground"]}),
    ]  # b's quota and policy go with its namespace; namespaces last
    assert api.find("ConfigMap", "x", "bh-a-serve") is not None
    assert api.find("ConfigMap", "theirs", "bh-a-serve") is not None
    assert api.find("Namespace", "kube-system") is not None
    assert api.find("Namespace", "bh-a-serve") is not None
    lists = [r for r in api.requests if r.method == "GET"]
    assert lists and all(
        r.query["labelSelector"] == ["app.kubernetes.io/managed-by=bulkhead"] for r in lists
    )


def test_prune_never_trusts_the_server_selector_alone(
    api: RecordingKubeApi, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "precious"}})
    monkeypatch.setattr(kube_api, "selector_matches", lambda selector, labels: True)
    assert cluster.prune([]).outcomes == []
    assert api.find("Namespace", "precious") is not None


def test_prune_of_one_tenant_keeps_the_others(api: RecordingKubeApi, cluster: Cluster) -> None:
    cluster.apply(tenant_objects("a") + tenant_objects("b"))
    report = cluster.prune([], tenant="a")
    assert [str(o.ref) for o in report.outcomes] == ["Namespace/bh-a-serve"]
    assert api.find("Namespace", "bh-b-serve") is not None
    selectors = {r.query["labelSelector"][0] for r in api.requests if r.method == "GET"}
    assert selectors == {"app.kubernetes.io/managed-by=bulkhead,bulkhead.dev/tenant=a"}


def test_prune_dry_run_deletes_nothing(api: RecordingKubeApi, cluster: Cluster) -> None:
    cluster.apply(tenant_objects("a"))
    report = cluster.prune([], dry_run=True)
    assert report.counts() == {"deleted": 1} and report.outcomes[0].dry_run
    assert api.writes()[-1].query == {"propagationPolicy": ["Foreground"], "dryRun": ["All"]}
    assert len(api.objects()) == 3


def test_kubeconfig_context_is_honoured_over_tls(tmp_path: Path) -> None:
    with RecordingKubeApi(token=TOKEN, tls=True) as api:
        path = str(kubeconfig(tmp_path / "kc", api, extra_context=True))
        assert Cluster.connect(Connection(kubeconfig=path)).apply(tenant_objects("a")).ok
        wrong = Cluster.connect(Connection(kubeconfig=path, context="wrong"))
        with pytest.raises(ClusterError) as refused:
            wrong.get(namespace("bh-a-serve"))
        assert refused.value.status == 401
        assert api.url.startswith("https://")


def test_in_cluster_config_reads_the_service_account(tmp_path: Path) -> None:
    with RecordingKubeApi(token=TOKEN, tls=True) as api:
        sa = tmp_path / "sa"
        sa.mkdir()
        (sa / "token").write_text(TOKEN)
        assert api.ca_file is not None
        (sa / "ca.crt").write_bytes(api.ca_file.read_bytes())
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}
        found = Cluster.connect(Connection(service_account_dir=sa, environ=env))  # auto-detected
        assert found.apply(tenant_objects("a")).ok
        forced = Cluster.connect(Connection(in_cluster=True, service_account_dir=sa, environ=env))
        assert forced.get(namespace("bh-a-serve")) is not None
        (sa / "token").unlink()
        with pytest.raises(ClusterError, match="in-cluster configuration: Service token file"):
            Cluster.connect(Connection(in_cluster=True, service_account_dir=sa, environ=env))


def test_missing_kubeconfig_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="cannot load the kubeconfig"):
        Cluster.connect(Connection(kubeconfig=str(tmp_path / "absent")))


def test_token_never_appears_in_logs_or_errors(
    api: RecordingKubeApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = Cluster.connect(Connection(kubeconfig=str(kubeconfig(tmp_path / "a", api))))
    api.fail("PATCH", "/api/v1/namespaces/bh-a-serve/resourcequotas/tenant-quota")
    messages = [o.error or "" for o in good.apply(tenant_objects("a")).outcomes]
    bad = Cluster.connect(
        Connection(kubeconfig=str(kubeconfig(tmp_path / "b", api, token=TOKEN[::-1])))
    )
    with RecordingKubeApi(token=TOKEN) as closed:
        pass  # its port is free again: nothing answers there
    gone = Cluster.connect(Connection(kubeconfig=str(kubeconfig(tmp_path / "c", closed))))
    for cluster in (bad, gone):
        with pytest.raises(ClusterError) as caught:
            cluster.get(namespace("x"))
        messages += [str(caught.value), repr(caught.value)]
    assert any("500 InternalError" in m for m in messages)
    assert any("401 Unauthorized" in m for m in messages)
    assert any("cannot reach the API server" in m for m in messages)
    for text in [*messages, caplog.text, repr(Connection(kubeconfig="x"))]:
        assert TOKEN not in text and TOKEN[::-1] not in text
    assert all(TOKEN not in repr(r) for r in api.requests)


def test_unauthenticated_requests_get_a_401_status(api: RecordingKubeApi) -> None:
    with pytest.raises(kube_api.KubeStatus) as refused:
        api.handle("GET", "/api/v1/namespaces", {}, b"")
    assert refused.value.code == 401 and refused.value.body()["kind"] == "Status"


def test_prune_never_deletes_the_platform_or_system_namespaces(
    api: RecordingKubeApi, cluster: Cluster
) -> None:
    for name in ("bulkhead", "kube-system", "default"):
        api.put(namespace(name), manager="bulkhead")  # labelled as Bulkhead's, by mistake
    assert cluster.prune([]).outcomes == []
    assert {o["metadata"]["name"] for o in api.objects("Namespace")} == {
        "bulkhead", "kube-system", "default"
    }  # fmt: skip


def test_an_untrusted_server_certificate_is_refused(tmp_path: Path) -> None:
    with RecordingKubeApi(token=TOKEN, tls=True) as api:
        path = kubeconfig(tmp_path / "kc", api)
        api.ca_file = None  # a kubeconfig without the double's CA
        untrusting = Cluster.connect(Connection(kubeconfig=str(kubeconfig(path, api))))
        with pytest.raises(ClusterError, match="cannot reach the API server") as refused:
            untrusting.get(namespace("x"))
        assert TOKEN not in str(refused.value)
        assert api.requests == []  # the token never left


def test_diff_reports_an_object_it_cannot_place(cluster: Cluster) -> None:
    [found] = cluster.diff([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}])
    assert found.error == "Bulkhead does not apply Secret (v1)" and not found.changed


def test_without_the_kubernetes_client_connect_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # `import kubernetes` fails
    with pytest.raises(ClusterError, match=r"pip install 'bulkhead\[k8s\]'"):
        Cluster.connect(Connection(kubeconfig="x"))

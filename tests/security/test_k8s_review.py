"""Issue 16 (pulling weights, the Kubernetes renderer, apply, the proofs) reviewed as an attacker.

Each test shows one finding of the review and holds its fix:

- the weights of a model a caller may not use by policy (its classification
  above the caller's clearance) were pulled all the same: the pull is now
  authorized with the model as its resource, as a call of the model is;
- `model pull` took the first of two mounts on one mount point, so a disk
  mounted over a tmpfs passed the "memory only" check;
- `model pull` read the whole answer, then decoded a second copy, in an init
  container sized for the model once: it now streams the answer into its files
  a MiB at a time and removes what it made when the answer is cut short;
- `k8s pull-secret -o FILE` minted a live key before finding FILE already
  there, then died with a traceback, leaving the key behind;
- one key could run any number of pulls at once, each holding a whole model
  in the gateway's memory until sent: a tenant now pulls one at a time, the
  gateway two (429 beyond);
- a model's object names carried 32 bits of its name's hash: two names sharing
  one were found at once, and such a pair stopped the whole catalog rendering
  (every tenant's reconcile); they now carry 128 bits;
- prune deleted any namespace (but five named ones) and any object labelled
  `managed-by: bulkhead`: it now deletes only the namespaces Bulkhead renders
  (`bh-<tenant>-serve|train`), objects inside them, and elsewhere objects named
  `bh-…` as Bulkhead names its own;
- a configured wide egress range reached Azure's WireServer (168.63.129.16), which
  is neither link-local nor a metadata address: it is denied now, and the proof
  probes it and Alibaba's metadata address too;
- the isolation proof probed only the pods' own ports and a few well-known
  ones, so a policy opening a tenant's pod on any other port passed it.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.cli.artifacts import CHUNK, filesystem_of, memory_backed, receive_files
from bulkhead.domain import Tier
from bulkhead.k8s.cluster import Cluster, Connection
from bulkhead.k8s.config import ConfigError, K8sConfig, from_mapping
from bulkhead.k8s.proofs import isolation_findings
from bulkhead.k8s.reconcile import CatalogUnreadable, read_catalog
from bulkhead.k8s.render import ModelView, TenantView, model_object, pull_secret, render_tenant
from bulkhead.runtime.worker import frames
from bulkhead.store.artifacts import ArtifactService
from bulkhead.testing.kube_api import RecordingKubeApi
from tests.cli.test_cli import bulkhead, clean_env
from tests.support.artifacts import import_model
from tests.support.gateway import GatewayThread
from tests.support.kube import TOKEN, kubeconfig

OWNER = "review-owner"
MODEL = "review-llama"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    gw = GatewayThread(tmp_path_factory.mktemp("review") / "data", None).start()
    gw.tenant(OWNER)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def artifact(served: GatewayThread) -> str:
    return import_model(served, OWNER, MODEL)


def _classify(gw: GatewayThread, level: str) -> None:
    gw.must("PUT", f"/admin/v1/models/{MODEL}/attributes?tenant={OWNER}", {"classification": level})


def test_a_model_above_the_callers_clearance_gives_no_weights(
    served: GatewayThread, artifact: str
) -> None:
    key = served.key(OWNER, role="model_developer", models=[MODEL])
    path = f"/tenant/v1/model-artifacts/{artifact}"
    _classify(served, "restricted")  # above the default clearance, "internal"
    try:
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        assert served.call("POST", "/v1/chat/completions", key, chat).status == 403
        refused = served.call("GET", path, key)
        assert refused.status == 403, refused.status
        pulls = [
            e for e in served.audit_events() if e.get("action") == "tenant:models.artifacts.pull"
        ]
        assert pulls[-1]["status"] == 403
    finally:
        _classify(served, "internal")
    assert served.call("GET", path, key).status == 200


MOUNTINFO_OVER = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 22 0:26 / /models rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k
32 31 8:2 / /models rw - ext4 /dev/vdb rw
"""


def test_a_disk_mounted_over_a_tmpfs_is_the_disk() -> None:
    # The later line is the mount on top, the one a path under /models reaches.
    assert filesystem_of(Path("/models"), MOUNTINFO_OVER) == "ext4"
    assert filesystem_of(Path("/models/x"), MOUNTINFO_OVER) == "ext4"


def _keys(gw: GatewayThread, tenant: str) -> list[Any]:
    return list(gw.must("GET", f"/admin/v1/tenants/{tenant}/keys")["data"])


def test_pull_secret_to_a_file_already_there_mints_no_key(
    served: GatewayThread, artifact: str, tmp_path: Path
) -> None:
    served.hold("admin:keys.create", OWNER)
    before = len(_keys(served, OWNER))
    taken = tmp_path / "secret.yaml"
    taken.write_text("mine\n")
    env = clean_env(BULKHEAD_URL=served.url, BULKHEAD_KEY=served.admin_key)
    result = bulkhead("k8s", "pull-secret", "--tenant", OWNER, "--model", MODEL,
                      "-o", str(taken), cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "exists" in result.stderr
    assert taken.read_text() == "mine\n"
    assert len(_keys(served, OWNER)) == before


def test_the_isolation_proof_probes_every_port_a_policy_opens() -> None:
    config = K8sConfig(vllm_image="r/v@sha256:" + "a" * 64, bulkhead_image="r/b@sha256:" + "b" * 64)
    objects = render_tenant(TenantView("acme", "tid", Tier.SHARED), [], config)
    assert isolation_findings(objects) == []
    # A policy that lets any pod of any namespace reach the tenant's vector store on 6334.
    opened = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "grpc", "namespace": "bh-acme-serve"},
        "spec": {
            "podSelector": {"matchLabels": {"bulkhead.dev/component": "vector-store"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 6334}]}],
        },
    }
    findings = isolation_findings([*objects, opened])
    assert any("6334/TCP" in f and "from outside it" in f for f in findings), findings


def test_a_tmpfs_line_that_is_not_the_directorys_device_is_refused(tmp_path: Path) -> None:
    # tmp_path is on disk; a mountinfo naming a tmpfs there (hidden, or stale) must not pass.
    lines = f"22 1 8:1 / / rw - ext4 /dev/vda rw\n31 22 0:999 / {tmp_path} rw - tmpfs tmpfs rw\n"
    assert filesystem_of(tmp_path, lines) == "tmpfs"
    assert memory_backed(tmp_path, lines) == "is not on the tmpfs its mount point names"
    assert memory_backed(Path("/dev/shm"), Path("/proc/self/mountinfo").read_text()) is None


def test_the_isolation_proof_counts_any_namespace_that_could_carry_a_selectors_labels() -> None:
    config = K8sConfig(vllm_image="r/v@sha256:" + "a" * 64, bulkhead_image="r/b@sha256:" + "b" * 64)
    objects = render_tenant(TenantView("acme", "tid", Tier.SHARED), [], config)
    # Any namespace labelled team=red (anyone's own namespace can be) reaches the vector store.
    opened = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "red", "namespace": "bh-acme-serve"},
        "spec": {
            "podSelector": {"matchLabels": {"bulkhead.dev/component": "vector-store"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "red"}}}]}],
        },
    }
    findings = isolation_findings([*objects, opened])
    assert any("stand-in-ns-" in f and "from outside it" in f for f in findings), findings


def test_a_tenant_pulls_one_model_at_a_time(
    served: GatewayThread, artifact: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pull holds the whole model in memory (twice, decrypted and joined) until it is
    # sent: unbounded parallel pulls by one key would take the gateway's memory.
    entered, release = threading.Event(), threading.Event()
    real = ArtifactService.load

    def slow(self: ArtifactService, tenant_id: str, artifact_id: str) -> Any:
        entered.set()
        release.wait(30)
        return real(self, tenant_id, artifact_id)

    monkeypatch.setattr(ArtifactService, "load", slow)
    key = served.key(OWNER, role="model_developer", models=[MODEL])
    path = f"/tenant/v1/model-artifacts/{artifact}"
    statuses: list[int] = []
    first = threading.Thread(target=lambda: statuses.append(served.call("GET", path, key).status))
    first.start()
    try:
        assert entered.wait(30)
        second = served.call("GET", path, key)
        assert second.status == 429, second.status
        assert "model pulls" in second.body["error"]["message"]
    finally:
        release.set()
        first.join(30)
    assert statuses == [200]
    monkeypatch.setattr(ArtifactService, "load", real)
    assert served.call("GET", path, key).status == 200  # the slot was given back


def test_two_model_names_found_to_share_a_32_bit_hash_get_their_own_objects() -> None:
    # Found in 0.06 s by trying names with one cleaned prefix: with 8 hex digits they made
    # one object name, and `render_all` (so every tenant's reconcile) refused the catalog.
    first, second = ("org/" + "a" * 48 + tail for tail in ("-2672", "-21629"))
    assert model_object(first) != model_object(second)
    tenant = TenantView("acme", "tid", Tier.SHARED)
    config = K8sConfig(vllm_image="r/v@sha256:" + "a" * 64, bulkhead_image="r/b@sha256:" + "b" * 64)
    models = [ModelView(name, owner="acme") for name in (first, second)]
    assert len([o for o in render_tenant(tenant, models, config) if o["kind"] == "Deployment"]) == 2
    assert len(model_object(first)) <= 63 and len(pull_secret(first)) <= 253  # a DNS subdomain


def test_prune_deletes_only_what_bulkhead_could_have_rendered(tmp_path: Path) -> None:
    # Labels are a claim anyone with write access can make, or a copy-paste can: an
    # overlay's commonLabels, a platform namespace with another name than `bulkhead`.
    owned = {"app.kubernetes.io/managed-by": "bulkhead"}
    with RecordingKubeApi(token=TOKEN) as api:
        cluster = Cluster.connect(Connection(kubeconfig=str(kubeconfig(tmp_path / "kc", api))))
        for name in ("monitoring", "bulkhead-prod", "bh-not-a-tenant"):
            api.put({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": name, "labels": owned}})  # fmt: skip
        gateway = {"name": "bulkhead-gateway", "namespace": "bulkhead-prod", "labels": owned}
        api.put({"apiVersion": "v1", "kind": "Service", "metadata": gateway})
        stale_map = {"name": "bh-mig-parted", "namespace": "bulkhead-prod", "labels": owned}
        api.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": stale_map})
        api.put({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "bh-gone-serve", "labels": owned}})  # fmt: skip
        report = cluster.prune([])
        assert sorted(str(o.ref) for o in report.outcomes) == [
            "ConfigMap/bulkhead-prod/bh-mig-parted",
            "Namespace/bh-gone-serve",
        ]


class _Recorded(io.BytesIO):
    """A stream that remembers the largest read asked of it."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:
        self.largest = max(self.largest, size if size is not None and size >= 0 else 1 << 62)
        return super().read(size)


def test_model_pull_streams_the_answer_and_leaves_nothing_half_pulled(memory: Path) -> None:
    # Read whole, the answer, its decoded copy and the tmpfs held the model three times
    # over in an init container whose memory is sized for it once.
    big = bytes(3 * CHUNK + 17)
    stream = _Recorded(b"".join(frames.encode([("config.json", b"{}"), ("w.safetensors", big)])))
    assert receive_files(stream, memory) == (2, len(big) + 2)
    assert stream.largest <= CHUNK and (memory / "w.safetensors").read_bytes() == big
    for path in memory.iterdir():
        path.unlink()
    cut = _Recorded(b"".join(frames.encode([("config.json", b"{}"), ("w.safetensors", big)]))[:-5])
    with pytest.raises(frames.FrameError, match="ends early"):
        receive_files(cut, memory)
    assert list(memory.iterdir()) == []
    for bad in ("../x", ".", "a/b"):
        with pytest.raises(frames.FrameError, match="not a plain name"):
            receive_files(io.BytesIO(b"".join(frames.encode([(bad, b"x")]))), memory)


@pytest.fixture
def memory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bh-review-", dir="/dev/shm"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_wide_egress_range_never_reaches_a_clouds_host_addresses() -> None:
    # Azure's WireServer (168.63.129.16, the host's, not link-local) gave AKS pods the
    # node's bootstrap secrets; Alibaba's metadata lies at 100.100.100.200.
    config = K8sConfig(
        vllm_image="r/v@sha256:" + "a" * 64,
        bulkhead_image="r/b@sha256:" + "b" * 64,
        egress_cidrs=("0.0.0.0/0",),
    ).check()
    models = [ModelView("acme-m", owner="acme")]
    objects = render_tenant(TenantView("acme", "tid", Tier.SHARED), models, config)
    assert isolation_findings(objects) == []
    (block,) = [
        p["ipBlock"]
        for o in objects
        if o["kind"] == "NetworkPolicy"
        for rule in o["spec"].get("egress") or ()
        for p in rule.get("to") or ()
        if "ipBlock" in p
    ]
    assert {"168.63.129.16/32", "100.100.100.200/32", "169.254.0.0/16"} <= set(block["except"])


def test_a_listing_cut_into_pages_prunes_nothing() -> None:
    # The management API answers whole lists today; if it ever pages them, the tenants
    # of the next page must not look deleted to the reconciler.
    class Paged:
        def get(self, path: str) -> Any:
            if path == "/admin/v1/tenants":
                return {"object": "list", "data": [], "has_more": True}
            return {"object": "list", "data": []}

    with pytest.raises(CatalogUnreadable, match="pages"):
        read_catalog(Paged())


def test_the_init_container_pulls_weights_over_tls_by_default() -> None:
    """The key and the decrypted weights never cross the pod network in the clear: the
    gateway URL is https by default, http is refused unless the operator says the network
    itself encrypts, and the gateway's CA is trusted by the init container alone."""
    assert K8sConfig().gateway_url.startswith("https://")
    with pytest.raises(ConfigError, match="use https://"):
        from_mapping({"gateway_url": "http://bulkhead-gateway.bulkhead.svc:8080"}).check()
    from_mapping({"gateway_url": "http://gw:8080", "plaintext_pull": True}).check()
    with pytest.raises(ConfigError, match="gateway_ca_pem"):
        from_mapping({"gateway_ca_pem": "not a certificate"}).check()

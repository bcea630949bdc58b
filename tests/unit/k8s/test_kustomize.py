"""The platform's Kustomize package (deploy/kustomize), rendered offline with `kubectl kustomize`.

Every object of each overlay (and of each optional component) is validated against the
Kubernetes OpenAPI schemas of two minor versions (kubernetes-validate, strict), and the
hardening the package promises is asserted on what kustomize really renders: replicas,
HPA and PDB per overlay, no secret values, images pinned by digest, the restricted
security context on every container, and the platform namespace's network policies.
No API server runs here: admission (Pod Security, the NetworkPolicy plugin of a CNI)
is not exercised.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bulkhead.domain import Tier
from bulkhead.gateway.chain import PUBLIC
from bulkhead.k8s.config import K8sConfig
from bulkhead.k8s.render.training import GATEWAY_TRAINING_ROLE, render_gateway_training_access
from bulkhead.k8s.render.views import TenantView
from bulkhead.settings import SETTINGS, Settings, load

ROOT = Path(__file__).resolve().parents[3] / "deploy" / "kustomize"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
VERSIONS = ("1.33.0", "1.35.0")
OVERLAYS = ("single-node", "ha")
COMPONENTS = ("ingress", "servicemonitor", "upstream-egress", "fine-tuning-k8s")
CRDS = {  # not in the core schemas (tests/unit/deploy/test_prometheus_rule.py checks the rule)
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
SECRET_ENV = {
    row.env
    for row in SETTINGS
    if row.name in {f.name for f in dataclasses.fields(Settings) if not f.repr}
}
METADATA = ipaddress.ip_address("169.254.169.254")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def with_components(tmp: Path, overlay: str, components: tuple[str, ...]) -> list[dict[str, Any]]:
    """An overlay plus optional components, as an operator's own kustomization would add them
    (kustomize takes only relative paths to other kustomizations)."""

    def rel(path: Path) -> str:
        return os.path.relpath(path, tmp)

    (tmp / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [rel(ROOT / "overlays" / overlay)],
                "components": [rel(ROOT / "components" / c) for c in components],
            }
        )
    )
    return kustomize(tmp)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize(ROOT / "overlays" / request.param)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [obj] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def kinds(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in kinds(objects, "Deployment")
    ]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def validate(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CRDS:
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


# -- schemas ----------------------------------------------------------------------------


def test_every_object_of_each_overlay_is_valid_for_two_kubernetes_versions(rendered):
    _, objects = rendered
    assert objects
    validate(objects)


def test_the_validator_refuses_an_unknown_field():
    """The check above is not vacuous: strict mode refuses a misspelt field."""
    bad = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "dat": {"a": "b"},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)


def test_each_component_renders_on_each_overlay_and_is_valid(tmp_path):
    for overlay in OVERLAYS:
        work = tmp_path / overlay
        work.mkdir()
        objects = with_components(work, overlay, COMPONENTS)
        validate(objects)
        ingress = find(objects, "Ingress", "bulkhead-gateway")
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "bulkhead-gateway", "port": {"name": "http"}}
        assert ingress["metadata"]["namespace"] == "bulkhead"
        monitor = find(objects, "ServiceMonitor", "bulkhead-gateway")
        endpoint = monitor["spec"]["endpoints"][0]
        assert endpoint["port"] == "metrics"
        token = {"name": "bulkhead-metrics-token", "key": "token"}
        assert endpoint["authorization"] == {"type": "Bearer", "credentials": token}
        check_metrics_listener(objects)
        find(objects, "NetworkPolicy", "gateway-egress-upstreams")


def check_metrics_listener(objects: list[dict[str, Any]]) -> None:
    """With the component, metrics leave loopback only with their token and their own policy."""
    config = find(objects, "ConfigMap", "bulkhead-config")["data"]
    assert config["BULKHEAD_METRICS_HOST"] == "0.0.0.0"
    gateway = find(objects, "Deployment", "bulkhead-gateway")["spec"]["template"]["spec"]
    container = next(c for c in gateway["containers"] if c["name"] == "gateway")
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    directory = config["BULKHEAD_METRICS_TOKEN_FILE"].rsplit("/", 1)[0]
    assert mounts["metrics-token"] == {**mounts["metrics-token"], "mountPath": directory}
    assert mounts["metrics-token"]["readOnly"] is True
    volumes = {v["name"]: v for v in gateway["volumes"]}
    assert volumes["metrics-token"]["secret"]["secretName"] == "bulkhead-metrics-token"
    assert {p["containerPort"] for p in container["ports"]} >= {8080, 9464}
    policy = find(objects, "NetworkPolicy", "gateway-ingress-metrics")["spec"]
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9464}]
    scraper = policy["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert scraper == {"bulkhead.dev/metrics-scraper": "true"}


def test_without_the_component_metrics_stay_on_loopback(rendered):
    _, objects = rendered
    config = find(objects, "ConfigMap", "bulkhead-config")["data"]
    assert "BULKHEAD_METRICS_HOST" not in config  # the default: 127.0.0.1
    assert not [p for p in kinds(objects, "NetworkPolicy") if "metrics" in p["metadata"]["name"]]


# -- replicas, HPA, PDB, spread ---------------------------------------------------------


def test_replicas_autoscaling_and_disruption_budget_per_overlay(rendered):
    overlay, objects = rendered
    gateway = find(objects, "Deployment", "bulkhead-gateway")
    pdb = find(objects, "PodDisruptionBudget", "bulkhead-gateway")
    hpas = kinds(objects, "HorizontalPodAutoscaler")
    assert find(objects, "Deployment", "bulkhead-audit-sequencer")["spec"]["replicas"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == gateway["spec"]["selector"]["matchLabels"]
    if overlay == "single-node":
        assert gateway["spec"]["replicas"] == 1
        assert hpas == []
        assert pdb["spec"] == {**pdb["spec"], "maxUnavailable": 1}  # a drain is never blocked
        assert "minAvailable" not in pdb["spec"]
        assert "topologySpreadConstraints" not in gateway["spec"]["template"]["spec"]
    else:
        assert gateway["spec"]["replicas"] == 3
        [hpa] = hpas
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "bulkhead-gateway",
        }
        assert hpa["spec"]["minReplicas"] == 3 < hpa["spec"]["maxReplicas"]
        assert pdb["spec"]["minAvailable"] == 2 and "maxUnavailable" not in pdb["spec"]
        spread = gateway["spec"]["template"]["spec"]["topologySpreadConstraints"]
        labels = gateway["spec"]["template"]["metadata"]["labels"]
        assert {c["topologyKey"] for c in spread} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        for constraint in spread:
            selector = constraint["labelSelector"]["matchLabels"]
            assert selector.items() <= labels.items()


def test_the_gateway_pods_follow_the_shared_design(rendered):
    _, objects = rendered
    gateway = find(objects, "Deployment", "bulkhead-gateway")
    template = gateway["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "bulkhead-gateway"
    [container] = template["spec"]["containers"]
    assert container["args"] == ["serve"]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    service = find(objects, "Service", "bulkhead-gateway")
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "bulkhead-gateway"}
    # No Service reaches the sequencer.
    for svc in kinds(objects, "Service"):
        assert svc["spec"]["selector"].get("app.kubernetes.io/name") != "bulkhead-audit-sequencer"
    # The platform's objects are not the ones `bulkhead k8s` owns (and may prune).
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kustomize"
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "bulkhead"


def test_probes_hit_the_health_endpoint_the_server_has(rendered):
    _, objects = rendered
    spec = find(objects, "Deployment", "bulkhead-gateway")["spec"]["template"]["spec"]
    [container] = spec["containers"]
    for probe in ("readinessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in PUBLIC and get["port"] == "http", probe
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}


def test_the_gateway_serves_tls_inside_the_cluster_too(rendered, tmp_path):
    """Model servers' init containers send a key and receive decrypted weights from the
    gateway: its in-cluster listener is TLS, its certificate an existing Secret's."""
    _, objects = rendered
    spec = find(objects, "Deployment", "bulkhead-gateway")["spec"]["template"]["spec"]
    [container] = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BULKHEAD_TLS_CERT"] == "/etc/bulkhead/tls/tls.crt"
    assert env["BULKHEAD_TLS_KEY"] == "/etc/bulkhead/tls/tls.key"
    assert {"name": "tls", "mountPath": "/etc/bulkhead/tls", "readOnly": True} in container[
        "volumeMounts"
    ]
    [volume] = [v for v in spec["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "bulkhead-gateway-tls"
    for probe in ("readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe
    with_ingress = with_components(tmp_path, "ha", ("ingress",))
    [ingress] = kinds(with_ingress, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"


def test_the_sequencer_runs_alone_and_listens_on_nothing(rendered):
    _, objects = rendered
    spec = find(objects, "Deployment", "bulkhead-audit-sequencer")["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["args"] == ["audit", "sequencer"]
    assert "ports" not in container
    assert not {"readinessProbe", "livenessProbe", "startupProbe"} & set(container)
    names = {v["name"] for v in container["env"]}
    assert "BULKHEAD_REDIS_URL" not in names  # it serves no calls


def test_termination_grace_covers_the_drain(rendered):
    _, objects = rendered
    config = find(objects, "ConfigMap", "bulkhead-config")["data"]
    grace = int(config["BULKHEAD_SHUTDOWN_GRACE_S"])
    spec = find(objects, "Deployment", "bulkhead-gateway")["spec"]["template"]["spec"]
    [container] = spec["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + grace + 5


# -- configuration and secrets ----------------------------------------------------------


def test_the_config_map_holds_real_settings_that_load(rendered, tmp_path):
    _, objects = rendered
    data = find(objects, "ConfigMap", "bulkhead-config")["data"]
    known = {row.env for row in SETTINGS if row.env is not None}
    assert set(data) <= known, set(data) - known
    assert not set(data) & SECRET_ENV
    env = {
        **data,
        "BULKHEAD_DATA_DIR": str(tmp_path),
        "BULKHEAD_DATABASE_URL": "postgresql+psycopg://u@db.example/bulkhead",
        "BULKHEAD_REDIS_URL": "rediss://redis.example:6379/0",
        "BULKHEAD_PKCS11_PIN": "not-a-real-pin",
    }
    settings = load(env=env)
    assert settings.host == "0.0.0.0" and settings.port == 8080
    assert settings.kms_backend == "pkcs11" and settings.start_workers is False
    assert str(settings.pkcs11_module).startswith("/opt/hsm/")


def test_no_secret_value_is_rendered(rendered):
    _, objects = rendered
    assert kinds(objects, "Secret") == []
    for name, spec in pod_specs(objects):
        for container in containers(spec):
            for var in container.get("env", []):
                if var["name"] in SECRET_ENV:
                    assert "value" not in var, (name, var["name"])
                    assert set(var["valueFrom"]) == {"secretKeyRef"}, (name, var["name"])
            refs = {v["name"] for v in container.get("env", []) if "valueFrom" in v}
            assert {"BULKHEAD_DATABASE_URL", "BULKHEAD_PKCS11_PIN"} <= refs, name
    gateway = find(objects, "Deployment", "bulkhead-gateway")["spec"]["template"]["spec"]
    assert "BULKHEAD_REDIS_URL" in {v["name"] for v in gateway["containers"][0]["env"]}


def test_every_image_is_pinned_by_digest(rendered, tmp_path):
    _, objects = rendered
    images = [c["image"] for _, spec in pod_specs(objects) for c in containers(spec)]
    assert images
    for image in images:
        assert DIGEST.match(image), image


# -- hardening --------------------------------------------------------------------------


def effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    ctx = container.get("securityContext", {})
    return ctx[key] if key in ctx else pod.get("securityContext", {}).get(key)


def test_every_container_is_hardened(rendered):
    _, objects = rendered
    for name, spec in pod_specs(objects):
        assert spec["automountServiceAccountToken"] is False, name
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), (name, flag)
        assert not any("hostPath" in v for v in spec.get("volumes", [])), name
        for container in containers(spec):
            where = (name, container["name"])
            ctx = container["securityContext"]
            assert effective(spec, container, "runAsNonRoot") is True, where
            assert effective(spec, container, "runAsUser") > 0, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx.get("privileged", False) is False, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            for profile in ("seccompProfile", "appArmorProfile"):
                assert effective(spec, container, profile) == {"type": "RuntimeDefault"}, where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            [tmp] = [v for v in spec["volumes"] if v["name"] == mounts["/tmp"]]
            assert tmp["emptyDir"]["medium"] == "Memory", where
    for account in kinds(objects, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_the_namespace_enforces_pod_security_restricted(rendered):
    _, objects = rendered
    namespace = find(objects, "Namespace", "bulkhead")
    for mode in ("enforce", "audit", "warn"):
        assert namespace["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_the_hsm_client_comes_from_a_read_only_volume(rendered):
    _, objects = rendered
    config = find(objects, "ConfigMap", "bulkhead-config")["data"]
    for name, spec in pod_specs(objects):
        [container] = spec["containers"]
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "hsm-client"]
        assert mount["readOnly"] is True
        assert config["BULKHEAD_PKCS11_MODULE"].startswith(mount["mountPath"] + "/"), name
        [volume] = [v for v in spec["volumes"] if v["name"] == "hsm-client"]
        assert volume["persistentVolumeClaim"]["readOnly"] is True


# -- network policies -------------------------------------------------------------------


def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    assert set(selector) <= {"matchLabels"}  # the package uses no expressions
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_network_policies_deny_by_default_and_allow_only_each_need(rendered):
    _, objects = rendered
    policies = kinds(objects, "NetworkPolicy")
    deny = find(objects, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    labels = {
        name: find(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        for name in ("bulkhead-gateway", "bulkhead-audit-sequencer")
    }
    ingress = {
        name: [r for p in policies if selects(p, lab) for r in p["spec"].get("ingress", [])]
        for name, lab in labels.items()
    }
    assert ingress["bulkhead-audit-sequencer"] == []  # reachable by no pod
    # Clients through the ingress controller; tenants' model servers pulling their weights.
    [clients, pulls] = ingress["bulkhead-gateway"]
    for rule in (clients, pulls):
        assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert clients["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert pulls["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "bulkhead"}},
            "podSelector": {"matchLabels": {"bulkhead.dev/component": "model-server"}},
        }
    ]
    # In-cluster egress of the gateway: DNS, and the model servers on 8000 only.
    egress = [
        r
        for p in policies
        if selects(p, labels["bulkhead-gateway"])
        for r in p["spec"].get("egress", [])
    ]
    for rule in egress:
        for peer in rule["to"]:
            if (
                "podSelector" in peer
                and peer["podSelector"]["matchLabels"].get("bulkhead.dev/component")
                == "model-server"
            ):
                assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
                assert peer["namespaceSelector"] == {
                    "matchLabels": {"app.kubernetes.io/managed-by": "bulkhead"}
                }
            elif "podSelector" in peer:
                assert peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
                assert {p["port"] for p in rule["ports"]} == {53}


def test_no_egress_reaches_the_metadata_address(tmp_path):
    objects = with_components(tmp_path, "ha", COMPONENTS)
    blocks = [
        peer["ipBlock"]
        for policy in kinds(objects, "NetworkPolicy")
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]
    assert blocks
    for block in blocks:
        network = ipaddress.ip_network(block["cidr"])
        if network.version != METADATA.version or METADATA not in network:
            continue
        excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
        assert any(METADATA in e for e in excepted), block
    for peer in [p for p in blocks if p["cidr"] == "::/0"]:
        assert "fd00:ec2::254/128" in peer["except"]


# -- fine-tuning on Kubernetes (components/fine-tuning-k8s) -----------------------------


def test_fine_tuning_gives_the_gateway_alone_a_short_token_and_the_api_server(tmp_path):
    for name in ("plain", "tuning"):
        (tmp_path / name).mkdir()
    plain = with_components(tmp_path / "plain", "ha", ())
    objects = with_components(tmp_path / "tuning", "ha", ("fine-tuning-k8s",))
    validate(objects)
    added = {(o["kind"], o["metadata"]["name"]) for o in objects}
    added -= {(o["kind"], o["metadata"]["name"]) for o in plain}
    assert added == {("NetworkPolicy", "gateway-egress-kube-apiserver")}  # and patches alone
    gateway = find(objects, "Deployment", "bulkhead-gateway")
    spec = gateway["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False  # the token is the projected one
    [container] = spec["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    api = mounts["kube-api-access"]
    assert api["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"  # the loader's
    assert api["readOnly"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    sources = volumes["kube-api-access"]["projected"]["sources"]
    [token] = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
    assert token["path"] == "token" and 600 <= token["expirationSeconds"] <= 3600
    assert "audience" not in token  # the API server's own identifier: good there alone
    [ca] = [s["configMap"] for s in sources if "configMap" in s]
    assert ca["name"] == "kube-root-ca.crt" and ca["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    # The sequencer gets nothing of it.
    sequencer = find(objects, "Deployment", "bulkhead-audit-sequencer")["spec"]["template"]
    assert "kube-api-access" not in {v["name"] for v in sequencer["spec"].get("volumes", [])}
    # The settings load, and name the mounted cluster settings file.
    data = find(objects, "ConfigMap", "bulkhead-config")["data"]
    env = {**data, "BULKHEAD_DATA_DIR": str(tmp_path / "data")}
    settings = load(env={**env, "BULKHEAD_PKCS11_PIN": "not-a-real-pin"})
    assert settings.fine_tuning_runner == "kubernetes" and settings.fine_tuning_jobs > 0
    assert Path(str(settings.k8s_config)).parent == Path(mounts["k8s-config"]["mountPath"])
    assert volumes["k8s-config"]["configMap"]["name"] == "bulkhead-k8s-config"
    # Egress: the API server's address (the operator's), on its ports, nothing else.
    policy = find(objects, "NetworkPolicy", "gateway-egress-kube-apiserver")["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "bulkhead-gateway"}}
    assert policy["policyTypes"] == ["Egress"] and "ingress" not in policy
    [rule] = policy["egress"]
    assert [set(peer) for peer in rule["to"]] == [{"ipBlock"}]
    assert ipaddress.ip_network(rule["to"][0]["ipBlock"]["cidr"]).num_addresses == 1
    assert {p["port"] for p in rule["ports"]} == {443, 6443}
    # The Role `bulkhead k8s render` puts in each training namespace is bound to this account.
    tenant = TenantView(name="acme", id="t-1", tier=Tier.SHARED)
    config = K8sConfig()
    [_, binding] = render_gateway_training_access(tenant, config)
    assert binding["roleRef"]["name"] == GATEWAY_TRAINING_ROLE
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": spec["serviceAccountName"],
            "namespace": gateway["metadata"]["namespace"],
        }
    ]
    assert find(objects, "ServiceAccount", spec["serviceAccountName"])

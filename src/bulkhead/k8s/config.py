"""What the Kubernetes renderer needs to know about the cluster: `K8sConfig`.

Every field has a safe default except the two images, which have none: an
image must be pinned by digest (`registry/name@sha256:<64 hex>`), a tag is
refused, and a model server is never rendered without one.  `load` reads a
YAML or JSON file (JSON is YAML), refuses unknown keys and names the bad one.
The dedicated pool's values may hold `{tenant}`, replaced by the tenant's name
(the default gives every dedicated tenant its own labelled, tainted nodes).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from bulkhead.domain import Tier
from bulkhead.errors import BulkheadError, ConfigError
from bulkhead.runtime.gpu import GpuModel, gpu_model

DIGEST = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
TAINT_EFFECTS = ("NoSchedule", "NoExecute", "PreferNoSchedule")
DENIED_CIDRS = (
    "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack metadata
    "169.254.0.0/16",  # IPv4 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "fe80::/10",  # IPv6 link-local
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "168.63.129.16/32",  # Azure's WireServer (VM agent, and node bootstrap secrets on AKS)
)


def _frozen(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class K8sConfig:
    """The cluster's facts and choices; `K8sConfig()` is a valid, safe configuration."""

    platform_namespace: str = "bulkhead"
    gateway_labels: Mapping[str, str] = field(
        default_factory=lambda: _frozen({"app.kubernetes.io/name": "bulkhead-gateway"})
    )
    gateway_port: int = 8080
    # Where a model server's init container pulls its weights (and sends its key): https,
    # unless `plaintext_pull` says the pod network encrypts (a WireGuard/IPsec CNI).
    gateway_url: str = "https://bulkhead-gateway.bulkhead.svc:8080"
    # The CA that signed the gateway's in-cluster certificate (PEM, public): put in each
    # serve namespace as a ConfigMap and trusted by the init container alone. None: the
    # image's trust store (a certificate from a public or the organisation's CA).
    gateway_ca_pem: str | None = None
    plaintext_pull: bool = False
    dns_namespace: str = "kube-system"
    dns_labels: Mapping[str, str] = field(default_factory=lambda: _frozen({"k8s-app": "kube-dns"}))
    dns_port: int = 53
    # Never reachable: every egress ipBlock excepts those inside it.
    denied_cidrs: tuple[str, ...] = DENIED_CIDRS
    # Outside addresses model servers may reach (none by default).
    egress_cidrs: tuple[str, ...] = ()
    vllm_image: str | None = None
    bulkhead_image: str | None = None
    # RuntimeClass per tier (e.g. gvisor or kata for dedicated); None: the node's default.
    runtime_classes: Mapping[str, str | None] = field(
        default_factory=lambda: _frozen({t.value: None for t in Tier})
    )
    dedicated_label_key: str = "bulkhead.dev/dedicated-to"
    dedicated_label_value: str = "{tenant}"
    dedicated_taint_key: str = "bulkhead.dev/dedicated-to"
    dedicated_taint_value: str = "{tenant}"
    dedicated_taint_effect: str = "NoSchedule"
    dedicated_gpus_per_model: int = 1
    gpu_model: str = "h100-80gb"
    mig_profile: str = "1g.10gb"
    mig_config_name: str = "bulkhead"
    model_cpu_millicores: int = 2000
    model_memory_mib: int = 8192
    # The memory-backed emptyDir the decrypted model lives in (counts as the pod's memory).
    model_files_mib: int = 8192
    tmp_mib: int = 1024
    # Each fine-tuned adapter's memory-backed emptyDir in its base's vLLM pod.
    adapter_files_mib: int = 512
    vector_store_port: int = 6333
    # Kubernetes quotas are per namespace: the train namespace gets this share (rounded
    # down) of each of the tenant's compute limits and the serve namespace the rest, so
    # the two together never exceed what the tenant was given.
    train_share_percent: int = 25
    # The gateway's ServiceAccount in the platform namespace: it runs fine-tuning Jobs in
    # each training namespace (a Role there lets it, and nothing more).
    gateway_service_account: str = "bulkhead-gateway"
    # How long a finished fine-tuning Job (and its pod) stays before Kubernetes removes it.
    training_ttl_s: int = 300

    def runtime_class(self, tier: Tier) -> str | None:
        return self.runtime_classes.get(tier.value)

    def gpu(self) -> GpuModel:
        return gpu_model(self.gpu_model)

    def check(self) -> K8sConfig:
        """Itself, or `ConfigError` naming the first bad field."""
        for f in fields(self):
            problem = _CHECKS.get(f.name, _ok)(getattr(self, f.name))
            if problem:
                raise ConfigError(f"k8s config: {f.name}: {problem}.", param=f.name)
        if self.gateway_url.startswith("http://") and not self.plaintext_pull:
            raise ConfigError(
                "k8s config: gateway_url: the init containers send a key and receive decrypted "
                "weights there: use https:// (or set plaintext_pull: true where the pod network "
                "itself encrypts).",
                param="gateway_url",
            )
        for cidr in self.egress_cidrs:
            net = ipaddress.ip_network(cidr)
            for denied in self.denied_cidrs:
                bad = ipaddress.ip_network(denied)
                if bad.version == net.version and net.subnet_of(bad):  # type: ignore[arg-type]
                    raise ConfigError(
                        f"k8s config: egress_cidrs: {cidr} lies inside the denied {denied}.",
                        param="egress_cidrs",
                    )
        try:
            model = self.gpu()
        except BulkheadError as exc:
            raise ConfigError(f"k8s config: gpu_model: {exc.message}", param="gpu_model") from None
        try:
            profile = model.profile(self.mig_profile)
        except BulkheadError as exc:
            raise ConfigError(
                f"k8s config: mig_profile: {exc.message}", param="mig_profile"
            ) from None
        if not _LABEL_VALUE.match(f"mig-{profile.name}"):
            raise ConfigError(
                f"k8s config: mig_profile: '{profile.name}' has no Kubernetes resource name.",
                param="mig_profile",
            )
        return self

    def need_image(self, name: str) -> str:
        image: str | None = getattr(self, name)
        if image is None:
            raise ConfigError(
                f"k8s config: {name} is not set: name the image pinned by digest "
                "(registry/name@sha256:<64 hex>).",
                param=name,
            )
        return image


def _ok(value: Any) -> str | None:
    return None


def _dns_label(value: Any) -> str | None:
    ok = isinstance(value, str) and len(value) <= 63 and _DNS_LABEL.match(value)
    return None if ok else "a DNS label (a-z, 0-9, '-', at most 63)"


def _port(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
    return None if ok else "a port number 1-65535"


def _percent(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100
    return None if ok else "a whole number from 0 to 100"


def _positive(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "a whole number >= 1"


def _labels(value: Any) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return "a non-empty map of label keys to values"
    for key, item in value.items():
        if not (isinstance(key, str) and _LABEL_KEY.match(key)):
            return f"'{key}' is not a label key"
        if not (isinstance(item, str) and len(item) <= 63 and _LABEL_VALUE.match(item)):
            return f"'{item}' is not a label value"
    return None


def _label_key(value: Any) -> str | None:
    return None if isinstance(value, str) and _LABEL_KEY.match(value) else "a label key"


def _label_value(value: Any) -> str | None:
    # With a tenant name of the longest a namespace allows in place of {tenant}.
    ok = (
        isinstance(value, str) and value and _LABEL_VALUE.match(value.replace("{tenant}", "t" * 54))
    )
    return None if ok else "a label value ('{tenant}' for the tenant's name)"


def _image(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and DIGEST.match(value):
        return None
    return "an image pinned by digest (registry/name@sha256:<64 hex>), never a tag"


def _url(value: Any) -> str | None:
    ok = isinstance(value, str) and re.match(r"^https?://[^\s/]+(/\S*)?$", value)
    return None if ok else "an http(s) URL"


_PEM = re.compile(
    r"^(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?)+$"
)


def _ca_pem(value: Any) -> str | None:
    if value is None:
        return None
    ok = isinstance(value, str) and len(value) <= 65536 and _PEM.match(value.strip() + "\n")
    return None if ok else "PEM certificates (BEGIN/END CERTIFICATE), at most 64 KiB"


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _cidrs(value: Any) -> str | None:
    if not isinstance(value, tuple):
        return "a list of CIDRs"
    for item in value:
        try:
            ipaddress.ip_network(item, strict=True)
        except (TypeError, ValueError):
            return f"'{item}' is not a CIDR (address/prefix, host bits zero)"
    return None


def _runtime_classes(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "a map of tier to RuntimeClass name or null"
    for tier, name in value.items():
        if tier not in {t.value for t in Tier}:
            return f"unknown tier '{tier}'"
        if name is not None and _dns_label(name):
            return f"'{name}' is not a RuntimeClass name"
    return None


def _effect(value: Any) -> str | None:
    return None if value in TAINT_EFFECTS else "one of " + ", ".join(TAINT_EFFECTS)


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty string"


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "platform_namespace": _dns_label,
    "gateway_labels": _labels,
    "gateway_port": _port,
    "gateway_url": _url,
    "gateway_ca_pem": _ca_pem,
    "plaintext_pull": _flag,
    "dns_namespace": _dns_label,
    "dns_labels": _labels,
    "dns_port": _port,
    "denied_cidrs": _cidrs,
    "egress_cidrs": _cidrs,
    "vllm_image": _image,
    "bulkhead_image": _image,
    "runtime_classes": _runtime_classes,
    "dedicated_label_key": _label_key,
    "dedicated_label_value": _label_value,
    "dedicated_taint_key": _label_key,
    "dedicated_taint_value": _label_value,
    "dedicated_taint_effect": _effect,
    "dedicated_gpus_per_model": _positive,
    "gpu_model": _string,
    "mig_profile": _string,
    "mig_config_name": _dns_label,
    "model_cpu_millicores": _positive,
    "model_memory_mib": _positive,
    "model_files_mib": _positive,
    "tmp_mib": _positive,
    "adapter_files_mib": _positive,
    "vector_store_port": _port,
    "train_share_percent": _percent,
    "gateway_service_account": _dns_label,
    "training_ttl_s": _positive,
}


def from_mapping(values: Mapping[str, Any]) -> K8sConfig:
    """A config from parsed YAML/JSON: unknown keys refused, every value checked."""
    known = {f.name for f in fields(K8sConfig)}
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        raise ConfigError(
            f"k8s config: unknown key '{unknown[0]}'; known: {', '.join(sorted(known))}.",
            param=unknown[0],
        )
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, Mapping):
            if name == "runtime_classes":
                value = {t.value: None for t in Tier} | dict(value)
            value = _frozen(value)
        changes[name] = value
    return replace(K8sConfig(), **changes).check()


def load(path: str | Path) -> K8sConfig:
    """The config in the YAML or JSON file at `path`; `ConfigError` saying what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"k8s config: cannot read {path}: {exc.strerror}.") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"k8s config: {path} is not YAML or JSON{line}.") from None
    if values is None:
        return K8sConfig()
    if not isinstance(values, Mapping):
        raise ConfigError(f"k8s config: {path} must hold a map of settings.")
    return from_mapping(values)

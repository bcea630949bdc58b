"""The Pod Security Standards, `baseline` and `restricted`, as a checker over pod templates.

From kubernetes.io/docs/concepts/security/pod-security-standards (kubernetes/website
content/en/docs/concepts/security/pod-security-standards.md), the controls of the
current (`latest`) version, for Linux pods; every container list counts
(containers, initContainers, ephemeralContainers). A field the profile allows
to be undefined may be undefined here too; the one stricter option,
`require_apparmor`, asks every container for an explicit AppArmor profile
(RuntimeDefault or Localhost), which Bulkhead's own pods carry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bulkhead.k8s._templates import PodTemplate, pod_templates

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
    }
)  # fmt: skip
SELINUX_TYPES = frozenset(
    {"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
        "persistentVolumeClaim", "projected", "secret",
    }
)  # fmt: skip
CONFINED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def pod_security_restricted(
    objects: Sequence[Mapping[str, Any]], *, require_apparmor: bool = False
) -> list[str]:
    """Findings against `restricted` (which includes `baseline`) for every pod template."""
    findings: list[str] = []
    for template in pod_templates(objects):
        findings.extend(_pod_findings(template, require_apparmor))
    return findings


def _sc(node: Mapping[str, Any]) -> Mapping[str, Any]:
    value = node.get("securityContext")
    return value if isinstance(value, Mapping) else {}


def _pod_findings(t: PodTemplate, require_apparmor: bool) -> Iterator[str]:
    spec, pod_sc = t.spec, _sc(t.spec)
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield f"{t.where(f'spec.{field}')}: host namespaces are refused (baseline)"
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        yield f"{t.where('spec.securityContext.windowsOptions.hostProcess')}: refused (baseline)"
    for index, volume in enumerate(spec.get("volumes") or ()):
        kinds = sorted(set(volume) - {"name"})
        if "hostPath" in kinds:
            yield f"{t.where(f'spec.volumes[{index}].hostPath')}: hostPath is refused (baseline)"
        for kind in kinds:
            if kind not in RESTRICTED_VOLUMES and kind != "hostPath":
                yield f"{t.where(f'spec.volumes[{index}].{kind}')}: volume type (restricted)"
    yield from _pod_context(t, pod_sc)
    yield from _annotations(t)
    for path, container in t.containers():
        yield from _container_findings(t, path, container, pod_sc, require_apparmor)


def _pod_context(t: PodTemplate, pod_sc: Mapping[str, Any]) -> Iterator[str]:
    where = "spec.securityContext"
    if (pod_sc.get("appArmorProfile") or {}).get("type", "RuntimeDefault") not in CONFINED:
        yield f"{t.where(where + '.appArmorProfile.type')}: must be RuntimeDefault/Localhost"
    yield from _selinux(t, where, pod_sc)
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        yield f"{t.where(where + '.seccompProfile.type')}: Unconfined is refused (baseline)"
    for index, sysctl in enumerate(pod_sc.get("sysctls") or ()):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"{t.where(f'{where}.sysctls[{index}]')}: unsafe sysctl (baseline)"
    if pod_sc.get("runAsUser") == 0:
        yield f"{t.where(where + '.runAsUser')}: 0 is refused (restricted)"
    if pod_sc.get("runAsNonRoot") is False:
        yield f"{t.where(where + '.runAsNonRoot')}: false is refused (restricted)"


def _selinux(t: PodTemplate, where: str, sc: Mapping[str, Any]) -> Iterator[str]:
    options = sc.get("seLinuxOptions") or {}
    if options.get("type") and options["type"] not in SELINUX_TYPES:
        yield f"{t.where(where + '.seLinuxOptions.type')}: custom SELinux type (baseline)"
    for field in ("user", "role"):
        if options.get(field):
            yield f"{t.where(f'{where}.seLinuxOptions.{field}')}: must be unset (baseline)"


def _annotations(t: PodTemplate) -> Iterator[str]:
    for key, value in (t.metadata.get("annotations") or {}).items():
        where = t.where(f"metadata.annotations[{key}]")
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            yield f"{where}: AppArmor must be runtime/default or localhost/* (baseline)"
        seccomp = key == SECCOMP_POD_ANNOTATION or key.startswith(SECCOMP_CONTAINER_ANNOTATION)
        if seccomp and value == "unconfined":
            yield f"{where}: unconfined seccomp is refused (baseline)"


def _container_findings(
    t: PodTemplate,
    path: str,
    container: Mapping[str, Any],
    pod_sc: Mapping[str, Any],
    require_apparmor: bool,
) -> Iterator[str]:
    sc = _sc(container)
    where = f"{path}.securityContext"
    if sc.get("privileged"):
        yield f"{t.where(where + '.privileged')}: privileged is refused (baseline)"
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        yield f"{t.where(where + '.windowsOptions.hostProcess')}: refused (baseline)"
    for index, port in enumerate(container.get("ports") or ()):
        if port.get("hostPort"):
            yield f"{t.where(f'{path}.ports[{index}].hostPort')}: host ports are refused (baseline)"
    if sc.get("procMount", "Default") != "Default":
        yield f"{t.where(where + '.procMount')}: must be Default (baseline)"
    yield from _selinux(t, where, sc)
    yield from _capabilities(t, where, sc)
    if sc.get("allowPrivilegeEscalation") is not False:
        yield f"{t.where(where + '.allowPrivilegeEscalation')}: must be false (restricted)"
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        yield f"{t.where(where + '.runAsNonRoot')}: must be true here or for the pod (restricted)"
    if sc.get("runAsUser") == 0:
        yield f"{t.where(where + '.runAsUser')}: 0 is refused (restricted)"
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp not in CONFINED:
        yield (
            f"{t.where(where + '.seccompProfile.type')}: must be RuntimeDefault or Localhost"
            " here or for the pod (restricted)"
        )
    yield from _apparmor(t, where, container, sc, pod_sc, require_apparmor)


def _capabilities(t: PodTemplate, where: str, sc: Mapping[str, Any]) -> Iterator[str]:
    capabilities = sc.get("capabilities") or {}
    added = [str(c) for c in capabilities.get("add") or ()]
    for name in added:
        if name not in RESTRICTED_CAPABILITIES:
            profile = "baseline" if name not in BASELINE_CAPABILITIES else "restricted"
            yield f"{t.where(where + '.capabilities.add')}: {name} is refused ({profile})"
    if "ALL" not in (capabilities.get("drop") or ()):
        yield f"{t.where(where + '.capabilities.drop')}: must drop ALL (restricted)"


def _apparmor(
    t: PodTemplate,
    where: str,
    container: Mapping[str, Any],
    sc: Mapping[str, Any],
    pod_sc: Mapping[str, Any],
    require_apparmor: bool,
) -> Iterator[str]:
    own = (sc.get("appArmorProfile") or {}).get("type")
    if own is not None and own not in CONFINED:
        yield f"{t.where(where + '.appArmorProfile.type')}: must be RuntimeDefault/Localhost"
    if not require_apparmor:
        return
    annotation = (t.metadata.get("annotations") or {}).get(
        APPARMOR_ANNOTATION + str(container.get("name"))
    )
    effective = own or (pod_sc.get("appArmorProfile") or {}).get("type")
    if effective not in CONFINED and annotation is None:
        yield f"{t.where(where + '.appArmorProfile.type')}: no AppArmor profile is set"

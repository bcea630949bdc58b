"""Which runner trains this replica's fine-tuning jobs: `BULKHEAD_FINE_TUNING_RUNNER`.

`sandbox` (the default): a sandboxed process on this host (`finetune.runner`).
`kubernetes`: a Job per job in the tenant's training namespace
(`k8s.jobs.KubeRunner`), created and attached to through the API server with
the pod's own service account — the official client's in-cluster loader
(`k8s._client.connect`, the `kubernetes` package imported only then), the
cluster's settings from `BULKHEAD_K8S_CONFIG` (the file `bulkhead k8s --config`
reads; the Bulkhead image by digest is required).  Anything missing is a
`ConfigError` at start-up, naming what to fix: no half-wired replica starts.
The deployment side (a projected token, egress to the API server) is the
kustomize component `fine-tuning-k8s`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from bulkhead.domain import Tenant
from bulkhead.errors import ConfigError, InvalidRequest
from bulkhead.finetune.contract import Runner
from bulkhead.runtime.sandbox import SandboxMode
from bulkhead.settings import Settings

if TYPE_CHECKING:  # each runner's modules load with it: a gateway that trains nothing has neither
    from bulkhead.finetune.runner import SandboxRunner
    from bulkhead.k8s._client import Connection
    from bulkhead.k8s.jobs import KubeRunner

SETTING = "BULKHEAD_FINE_TUNING_RUNNER"


class ClosingRunner(Runner, Protocol):
    """A runner the application closes at shut-down (it stops what still runs)."""

    async def close(self) -> None: ...


def sandbox_runner(settings: Settings) -> SandboxRunner:
    """Training jobs confined like the workers (BULKHEAD_WORKER_SANDBOX), the data dir hidden;
    the runner's own uid range and per-job limits (`RunLimits`'s defaults).  Its modules
    load with it: a gateway that trains nothing never imports them."""
    from bulkhead.finetune.runner import RunnerConfig, SandboxRunner

    mode = SandboxMode(settings.worker_sandbox)
    return SandboxRunner(RunnerConfig(mode=mode, hidden=(settings.data_dir,)))


def in_cluster() -> Connection:
    """The pod's own service account (token and CA in the service account directory)."""
    from bulkhead.k8s._client import Connection

    return Connection(in_cluster=True)


def fine_tuning_runner(
    settings: Settings, tenant_of: Callable[[str], Tenant | None]
) -> ClosingRunner:
    """The runner `BULKHEAD_FINE_TUNING_RUNNER` names, or a `ConfigError` saying why not."""
    if settings.fine_tuning_runner == "kubernetes":
        return kube_runner(settings, tenant_of, in_cluster())
    return sandbox_runner(settings)


def kube_runner(
    settings: Settings, tenant_of: Callable[[str], Tenant | None], connection: Connection
) -> KubeRunner:
    """A `KubeRunner` on the cluster this process runs in."""
    from bulkhead.k8s import config as k8s_config
    from bulkhead.k8s._client import IN_CLUSTER_ENV, ClusterError, KubeApi, connect
    from bulkhead.k8s.jobs import KubeRunner, KubeRunnerConfig, WebSocketAttach
    from bulkhead.k8s.render.views import TenantView

    where = f"{SETTING}=kubernetes"
    if not settings.k8s_config:
        raise ConfigError(f"{where} needs BULKHEAD_K8S_CONFIG (the cluster's settings file)")
    cluster = k8s_config.load(settings.k8s_config)
    cluster.need_image("bulkhead_image")  # the training Job runs it
    if not connection.kubeconfig and IN_CLUSTER_ENV not in connection.environ:
        raise ConfigError(f"{where} runs only inside a Kubernetes pod ({IN_CLUSTER_ENV} unset)")
    try:
        api_client = connect(connection)
    except ClusterError as exc:  # the k8s extra is missing, or no service account token
        raise ConfigError(f"{where}: {exc.message}") from None

    def view(tenant_id: str) -> TenantView:
        tenant = tenant_of(tenant_id)
        if tenant is None:
            raise InvalidRequest("The tenant is gone.")
        limits = {k: v for k, v in tenant.quotas.items() if v is None or type(v) is int}
        return TenantView(
            name=tenant.name,
            id=tenant.id,
            tier=tenant.tier,
            status=tenant.status.value,
            limits=limits,
        )

    config = KubeRunnerConfig(k8s=cluster)
    return KubeRunner(KubeApi(api_client), WebSocketAttach(api_client), view, config)

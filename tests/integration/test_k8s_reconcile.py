"""`bulkhead k8s apply|diff|reconcile` against a real management API and `RecordingKubeApi`.

The management API is a real gateway (`tests/support/gateway.py`, SQLite and
PostgreSQL); the cluster is the recording test double of the API server, NOT a
cluster: these tests prove what Bulkhead reads and sends, not how a real API
server behaves.  The renderer is the stand-in of `tests/support/kube.py`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from bulkhead.cli.k8s_cluster import register
from bulkhead.testing.kube_api import RecordingKubeApi
from tests.support.gateway import GatewayThread
from tests.support.kube import OWNER, TOKEN, kubeconfig, stand_in_render


def cli() -> typer.Typer:
    """The `bulkhead` top level's global options, and `k8s` with these commands."""
    app = typer.Typer()

    @app.callback()
    def _options(
        ctx: typer.Context,
        server: Annotated[str | None, typer.Option()] = None,
        api_key: Annotated[str | None, typer.Option("--key")] = None,
        data_dir: Annotated[str | None, typer.Option()] = None,
    ) -> None:
        ctx.obj = {"server": server, "key": api_key, "data_dir": data_dir}

    k8s = typer.Typer()
    register(k8s, renderer=lambda config: stand_in_render)
    app.add_typer(k8s, name="k8s")
    return app


class Run:
    def __init__(self, gateway: GatewayThread, tmp_path: Path, api: RecordingKubeApi):
        self.gateway, self.tmp_path = gateway, tmp_path
        self.kubeconfig = str(kubeconfig(tmp_path / "kubeconfig", api))

    def __call__(self, *args: str, key: str | None = None, env: dict[str, str] | None = None):
        base = ["--server", self.gateway.url, "--key", key or self.gateway.admin_key]
        base += ["--data-dir", str(self.tmp_path), "k8s"]
        where = [] if "--in-cluster" in args else ["--kubeconfig", self.kubeconfig]
        result = CliRunner().invoke(cli(), [*base, *args, *where], env=env)
        assert TOKEN not in result.output
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return result


@pytest.fixture
def api() -> Iterator[RecordingKubeApi]:
    with RecordingKubeApi(token=TOKEN) as double:
        yield double


@pytest.fixture
def run(gateway: GatewayThread, tmp_path: Path, api: RecordingKubeApi) -> Run:
    return Run(gateway, tmp_path, api)


def quota(api: RecordingKubeApi, tenant: str) -> dict:
    found = api.find("ResourceQuota", "tenant-quota", f"bh-{tenant}-serve")
    assert found is not None
    return found


def test_reconcile_follows_tenants_created_retiered_and_deleted(
    gateway: GatewayThread, api: RecordingKubeApi, run: Run, unique: str
) -> None:
    gateway.tenant(unique)
    assert run("reconcile").exit_code == 0
    assert quota(api, unique)["spec"]["hard"]["pods"] == "10"
    assert api.find("NetworkPolicy", "default-deny", f"bh-{unique}-serve") is not None

    gateway.must("PATCH", f"/admin/v1/tenants/{unique}", {"tier": "mig"})
    gateway.must("PATCH", f"/admin/v1/tenants/{unique}/limits", {"requests_per_minute": 30})
    result = run("reconcile", "--json")
    assert result.exit_code == 0, result.output
    assert quota(api, unique)["spec"]["hard"]["pods"] == "20"
    annotations = quota(api, unique)["metadata"]["annotations"]
    assert annotations == {"bulkhead.dev/requests-per-minute": "30"}

    gateway.grant("admin:tenants.delete", unique)
    gateway.must("DELETE", f"/admin/v1/tenants/{unique}")  # its keys are destroyed first
    result = run("reconcile")
    assert result.exit_code == 0, result.output
    assert f"Namespace/bh-{unique}-serve deleted" in result.output
    assert api.find("Namespace", f"bh-{unique}-serve") is None
    assert api.find("Namespace", "bh-demo-serve") is not None  # the others stay


def test_an_unreadable_management_api_deletes_nothing(
    gateway: GatewayThread, api: RecordingKubeApi, run: Run, unique: str
) -> None:
    gateway.tenant(unique)
    assert run("reconcile").exit_code == 0
    writes = len(api.writes())
    refused = run("reconcile", key="bk_not_a_key")
    assert refused.exit_code == 1
    assert "management API unreadable, nothing applied or pruned" in refused.output
    assert len(api.writes()) == writes
    assert api.find("Namespace", f"bh-{unique}-serve") is not None


def test_apply_dry_run_diff_and_prune_of_one_tenant(
    gateway: GatewayThread, api: RecordingKubeApi, run: Run, unique: str
) -> None:
    gateway.tenant(unique)
    dry = run("apply", "--tenant", unique, "--dry-run", "server")
    assert dry.exit_code == 0, dry.output
    assert api.objects() == []
    assert run("diff", "--tenant", unique).exit_code == 1  # everything is new

    assert run("apply", "--tenant", unique).exit_code == 0
    assert {o["metadata"].get("labels", {}).get("bulkhead.dev/tenant") for o in api.objects()} == {
        unique
    }
    assert run("diff", "--tenant", unique).exit_code == 0
    gateway.must("PATCH", f"/admin/v1/tenants/{unique}", {"tier": "mig"})
    changed = run("diff", "--tenant", unique)
    assert changed.exit_code == 1
    assert '-      "pods": "10",' in changed.output and '+      "pods": "20",' in changed.output

    api.put(  # an owned object of this tenant that is no longer rendered
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "stale",
                "namespace": f"bh-{unique}-serve",
                "labels": {**OWNER, "bulkhead.dev/tenant": unique},
            },
        },
        manager="bulkhead",
    )
    pruned = run("apply", "--tenant", unique, "--prune", "--json")
    assert pruned.exit_code == 0, pruned.output
    assert api.find("ConfigMap", "stale", f"bh-{unique}-serve") is None
    assert quota(api, unique)["spec"]["hard"]["pods"] == "20"


def test_flags_are_checked_before_any_request(api: RecordingKubeApi, run: Run) -> None:
    assert run("apply").exit_code == 2
    assert run("apply", "--tenant", "a", "--all").exit_code == 2
    assert run("apply", "--all", "--dry-run", "client").exit_code == 2
    assert api.requests == []


def test_in_cluster_apply(gateway: GatewayThread, run: Run, tmp_path: Path, unique: str) -> None:
    gateway.tenant(unique)
    with RecordingKubeApi(token=TOKEN, tls=True) as api:
        sa = tmp_path / "sa"
        sa.mkdir()
        (sa / "token").write_text(TOKEN)
        assert api.ca_file is not None
        (sa / "ca.crt").write_bytes(api.ca_file.read_bytes())
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}
        args = ("apply", "--tenant", unique, "--in-cluster", "--service-account-dir", str(sa))
        result = run(*args, env=env)
        assert result.exit_code == 0, result.output
        assert api.find("Namespace", f"bh-{unique}-serve") is not None


@pytest.mark.serial
def test_watch_stops_on_sigterm(api: RecordingKubeApi, run: Run) -> None:
    def terminate_once_running() -> None:
        deadline = time.monotonic() + 20
        while len(api.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=terminate_once_running)
    killer.start()
    started = time.monotonic()
    result = run("reconcile", "--watch", "--interval", "0.1")
    killer.join()
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 20
    assert signal.getsignal(signal.SIGTERM) is before  # the handler was put back

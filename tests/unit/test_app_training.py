"""`BULKHEAD_FINE_TUNING_RUNNER` picks the runner `build` makes: the sandbox, or Kubernetes.

No API server runs here: the in-cluster loader is the official client's own, fed a fake
service account (a token and a CA file in a directory, the service host in the
environment), as the kubelet would give a pod.  Nothing is sent to the cluster.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bulkhead.app import training
from bulkhead.app.build import build
from bulkhead.errors import ConfigError
from bulkhead.finetune.runner import SandboxRunner
from bulkhead.k8s._client import Connection
from bulkhead.k8s.jobs import KubeRunner
from bulkhead.settings import Settings, load

IMAGE = "registry.example/bulkhead@sha256:" + "ab" * 32
TOKEN = "fake-service-account-token-" + "x" * 20
CLUSTER = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def pod_account(tmp: Path, environ: dict[str, str] | None = None) -> Connection:
    """What the kubelet gives a pod with a (projected) service account token."""
    account = tmp / "serviceaccount"
    account.mkdir(exist_ok=True)
    (account / "token").write_text(TOKEN)
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    env = CLUSTER if environ is None else environ
    return Connection(in_cluster=True, service_account_dir=account, environ=env)


def settings(tmp: Path, **env: str) -> Settings:
    config = tmp / "k8s.yaml"
    config.write_text(f"bulkhead_image: {IMAGE}\n")
    base = {
        "BULKHEAD_START_WORKERS": "0",
        "BULKHEAD_FINE_TUNING_JOBS": "1",
        "BULKHEAD_FINE_TUNING_RUNNER": "kubernetes",
        "BULKHEAD_K8S_CONFIG": str(config),
    }
    return load(data_dir=tmp / "data", env={**base, **env})


@pytest.fixture
def in_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Connection:
    connection = pod_account(tmp_path)
    monkeypatch.setattr(training, "in_cluster", lambda: connection)
    return connection


def test_build_makes_a_kube_runner_in_a_pod_and_closes_it(tmp_path: Path, in_pod: Connection):
    app = build(settings(tmp_path))
    try:
        runner = app.fine_tuning_runner
        assert isinstance(runner, KubeRunner)
        assert app.fine_tuning is not None and app.fine_tuning.scheduler.runner is runner
        assert runner.config.k8s.bulkhead_image == IMAGE
        assert runner.api.host == "https://10.96.0.1:443"  # type: ignore[attr-defined]
        assert TOKEN not in repr(runner) and TOKEN not in repr(runner.config)
    finally:
        asyncio.run(app.shutdown())


def test_the_default_is_the_sandbox_runner(tmp_path: Path, in_pod: Connection) -> None:
    app = build(settings(tmp_path, BULKHEAD_FINE_TUNING_RUNNER="sandbox"))
    try:
        assert isinstance(app.fine_tuning_runner, SandboxRunner)
    finally:
        asyncio.run(app.shutdown())
    unset = load(data_dir=tmp_path / "d2", env={})
    assert unset.fine_tuning_runner == "sandbox" and unset.k8s_config is None


def refused(tmp_path: Path, connection: Connection, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        training.kube_runner(settings(tmp_path, **env), lambda _t: None, connection)
    return caught.value.message


def test_outside_a_cluster_or_without_what_it_needs_the_gateway_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = pod_account(tmp_path, environ={})
    assert "KUBERNETES_SERVICE_HOST" in refused(tmp_path, outside)
    inside = pod_account(tmp_path)
    assert "BULKHEAD_K8S_CONFIG" in refused(tmp_path, inside, BULKHEAD_K8S_CONFIG="")
    (tmp_path / "empty.yaml").write_text("{}\n")
    no_image = refused(tmp_path, inside, BULKHEAD_K8S_CONFIG=str(tmp_path / "empty.yaml"))
    assert "bulkhead_image" in no_image
    (tmp_path / "serviceaccount" / "token").unlink()
    assert "in-cluster" in refused(tmp_path, inside)
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # the k8s extra is not installed
    assert "bulkhead[k8s]" in refused(tmp_path, pod_account(tmp_path))
    with pytest.raises(ConfigError, match="must be one of"):
        settings(tmp_path, BULKHEAD_FINE_TUNING_RUNNER="slurm")

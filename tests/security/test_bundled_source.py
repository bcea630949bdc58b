"""Nobody names a host file for a model: the bundled model is a worker kind, never a path.

The bundled SmolLM2 is found by its worker kind (`bulkhead.runtime.worker.bundled`),
through its package's installed RECORD.  Every field a tenant controls is checked
here: a tenant key cannot create a model (neither with the bundled kind nor any
other), a model version's upstream must be an http(s) URL (no ``file:``, no bare
path) and no request body takes a ``source``, ``gguf_file`` or ``path``; even the
platform admin names a worker kind from a fixed list, not a path, and the worker's
command line refuses any other kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.domain import Role
from bulkhead.runtime.worker import bundled
from bulkhead.runtime.worker.__main__ import parse_args
from tests.support.inprocess import InProcessGateway

GGUF = str(bundled.locate("smollm2-135m"))
PATHS = (GGUF, "/etc/passwd", "../../../etc/passwd", f"file://{GGUF}", "bundled:smollm2-135m")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(tmp_path_factory.mktemp("bundled") / "data")
    gateway.tenant("acme")
    gateway.model("acme-private", "http://127.0.0.1:9/v1", tenant="acme")
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def tenant_admin(gw: InProcessGateway) -> str:
    return gw.key("acme", role=Role.TENANT_ADMIN.value, name="bundled-test")


@pytest.mark.parametrize("worker", ["smollm2-135m", *PATHS])
def test_a_tenant_cannot_create_a_model(
    gw: InProcessGateway, tenant_admin: str, worker: str
) -> None:
    body = {"name": "mine", "worker": worker, "tenant": "acme"}
    answer = gw.call("POST", "/admin/v1/models", tenant_admin, body)
    assert answer.status == 403, answer.body


@pytest.mark.parametrize("upstream", PATHS)
def test_a_tenants_model_version_cannot_point_at_a_host_file(
    gw: InProcessGateway, tenant_admin: str, upstream: str
) -> None:
    path = "/tenant/v1/models/acme-private/versions"
    answer = gw.call("POST", path, tenant_admin, {"version": "v1", "upstream": upstream})
    assert 400 <= answer.status < 500, answer.body
    assert GGUF not in str(answer.body)


@pytest.mark.parametrize("field", ["source", "gguf_file", "path", "worker", "model_path"])
def test_no_tenant_body_takes_a_source_or_a_path(
    gw: InProcessGateway, tenant_admin: str, field: str
) -> None:
    path = "/tenant/v1/models/acme-private/versions"
    body = {"version": "v2", "upstream": "http://127.0.0.1:9/v1", field: GGUF}
    answer = gw.call("POST", path, tenant_admin, body)
    assert answer.status in (400, 422), answer.body


@pytest.mark.parametrize("worker", PATHS)
def test_the_platform_names_a_worker_kind_not_a_path(gw: InProcessGateway, worker: str) -> None:
    answer = gw.admin("POST", "/admin/v1/models", {"name": "p", "worker": worker})
    assert answer.status in (400, 422), answer.body
    body = {"name": "p", "worker": "smollm2-135m", "source": GGUF}
    assert gw.admin("POST", "/admin/v1/models", body).status in (400, 422)


@pytest.mark.parametrize("kind", PATHS)
def test_the_worker_refuses_any_other_kind(kind: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--socket", str(tmp_path / "s"), "--kind", kind, "--model-name", "m"])
    with pytest.raises(KeyError):
        bundled.locate(kind)


def test_the_bundled_file_is_the_packages_own_and_read_only_to_workers() -> None:
    entry = bundled.BUNDLED["smollm2-135m"]
    assert not Path(entry.file).is_absolute() and ".." not in Path(entry.file).parts
    located = Path(GGUF)
    assert located.name == Path(entry.file).name and located.is_file()
    assert "site-packages" in located.parts or "dist-packages" in located.parts

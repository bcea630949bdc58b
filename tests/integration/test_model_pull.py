"""`bulkhead model pull`: an imported model's files, decrypted, into memory only, for its server.

The init container of a private model's server on Kubernetes runs this
(`bulkhead.k8s.render`).  The tests import a small model through the CLI into
a real gateway, then pull it as the rendered init container would: with a
model developer's key limited to that model, into a tmpfs directory.  A
directory on disk is refused before anything is asked; another tenant, a key
for another model or an unknown id answer "not found"; an auditor or end user
is refused; the pull is on the audit record; nothing is overwritten.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.cli.artifacts import filesystem_of
from tests.cli.test_cli import bulkhead, clean_env
from tests.support.artifacts import import_model, model_files
from tests.support.gateway import GatewayThread

OWNER, OTHER = "pull-owner", "pull-other"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    gw = GatewayThread(tmp_path_factory.mktemp("pull") / "data", None).start()
    gw.tenant(OWNER)
    gw.tenant(OTHER)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def artifact(served: GatewayThread) -> str:
    return import_model(served, OWNER, "pull-llama")


@pytest.fixture
def memory_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bh-pull-", dir="/dev/shm"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pull(gw: GatewayThread, key: str, artifact: str, into: Path, cwd: Path) -> Any:
    env = clean_env(BULKHEAD_URL=gw.url, BULKHEAD_KEY=key)
    return bulkhead("model", "pull", "--artifact", artifact, "--into", str(into), cwd=cwd, env=env)


def test_the_models_own_key_pulls_its_files_into_memory(
    served: GatewayThread, artifact: str, memory_dir: Path, tmp_path: Path
) -> None:
    key = served.key(OWNER, role="model_developer", models=["pull-llama"])
    result = pull(served, key, artifact, memory_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 files" in result.stdout and key not in result.stdout + result.stderr
    expected = model_files()
    assert {p.name: p.read_bytes() for p in memory_dir.iterdir()} == expected
    for path in memory_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    events = served.audit_events()
    pulled = [e for e in events if e.get("action") == "tenant:models.artifacts.pull"]
    assert pulled and pulled[-1]["status"] == 200
    # Nothing is written over: a second pull into the same place fails cleanly.
    again = pull(served, key, artifact, memory_dir, tmp_path)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "File exists" in again.stderr


def test_a_directory_on_disk_is_refused_before_anything_is_asked(
    served: GatewayThread, artifact: str, tmp_path: Path
) -> None:
    key = served.key(OWNER, role="tenant_admin")
    before = len(served.audit_events())
    result = pull(served, key, artifact, tmp_path, tmp_path)
    assert result.returncode == 2 and "not tmpfs" in result.stderr
    assert list(tmp_path.iterdir()) == []
    assert len(served.audit_events()) == before


@pytest.mark.parametrize("who", ["other tenant", "key for another model", "unknown artifact"])
def test_what_the_caller_may_not_have_answers_not_found(
    served: GatewayThread, artifact: str, memory_dir: Path, tmp_path: Path, who: str
) -> None:
    if who == "other tenant":
        key, wanted = served.key(OTHER, role="tenant_admin"), artifact
    elif who == "key for another model":
        key, wanted = served.key(OWNER, role="model_developer", models=["else"]), artifact
    else:
        key, wanted = served.key(OWNER, role="tenant_admin"), "art-" + "0" * 24
    result = pull(served, key, wanted, memory_dir, tmp_path)
    assert result.returncode == 1 and "No such model artifact" in result.stderr
    assert list(memory_dir.iterdir()) == []


@pytest.mark.parametrize("role", ["tenant_auditor", "end_user"])
def test_auditors_and_end_users_never_get_weights(
    served: GatewayThread, artifact: str, role: str
) -> None:
    response = served.call("GET", f"/tenant/v1/model-artifacts/{artifact}",
                           served.key(OWNER, role=role))  # fmt: skip
    assert response.status == 403, response.body


def test_a_platform_key_gets_no_tenants_weights(served: GatewayThread, artifact: str) -> None:
    response = served.admin("GET", f"/tenant/v1/model-artifacts/{artifact}")
    assert response.status == 403


def test_the_route_is_documented_as_binary(served: GatewayThread) -> None:
    spec = served.admin("GET", "/openapi.json").body
    answer = spec["paths"]["/tenant/v1/model-artifacts/{artifact}"]["get"]["responses"]["200"]
    assert list(answer["content"]) == ["application/octet-stream"]


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw
31 22 0:26 / /models rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k
32 31 0:27 / /models/disk rw - ext4 /dev/vdb rw
33 22 0:28 / /with\\040space rw - ramfs ramfs rw
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/models", "tmpfs"),
        ("/models/x", "tmpfs"),
        ("/models/disk", "ext4"),
        ("/modelsx", "ext4"),
        ("/dev/shm", "tmpfs"),
        ("/with space", "ramfs"),
        ("/", "ext4"),
    ],
)
def test_the_filesystem_is_read_from_the_longest_mount_point(path: str, kind: str) -> None:
    assert filesystem_of(Path(path), MOUNTINFO) == kind


def test_this_machine_has_dev_shm_as_tmpfs() -> None:
    # The tests above pull into /dev/shm; if it were not tmpfs they would be refused.
    assert filesystem_of(Path("/dev/shm"), Path("/proc/self/mountinfo").read_text()) == "tmpfs"
    assert os.access("/dev/shm", os.W_OK)

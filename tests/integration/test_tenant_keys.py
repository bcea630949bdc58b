"""Tenant keys over time: rotation under traffic, retirement, schedule, shredding, retention."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pytest

from bulkhead.crypto import DecryptionFailed, decrypt
from tests.support.gateway import GatewayThread, UpstreamThread


def client(gw: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def upload(gw: GatewayThread, key: str, data: bytes) -> str:
    return str(client(gw, key).files.create(file=("d.jsonl", io.BytesIO(data)), purpose="batch").id)


def tenant_id(gw: GatewayThread, name: str) -> str:
    return str(gw.must("GET", f"/admin/v1/tenants/{name}")["id"])


def blob(gw: GatewayThread, tenant: str, file_id: str) -> Path:
    return Path(gw.settings.data_dir) / "blobs" / tenant / "file" / f"{file_id}.blob"


def test_rotation_under_concurrent_reads_and_writes(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    key = gateway.key(unique)
    c = client(gateway, key)
    written = {upload(gateway, key, b"seed %d" % i): b"seed %d" % i for i in range(5)}
    failures: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def traffic(worker: int) -> None:
        n = 0
        while not stop.is_set():
            try:
                data = b"w%d-%d" % (worker, n)
                with lock:
                    written[upload(gateway, key, data)] = data
                    snapshot = list(written.items())
                for file_id, expected in snapshot[-3:]:
                    assert c.files.content(file_id).read() == expected
                n += 1
            except BaseException as exc:
                failures.append(exc)
                return

    threads = [threading.Thread(target=traffic, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for _ in range(4):
        rotated = gateway.must("POST", f"/admin/v1/tenants/{unique}/kms/rotate")
        assert rotated["unreadable"] == []
    stop.set()
    for t in threads:
        t.join(30)
    assert failures == []
    for file_id, expected in written.items():  # nothing left undecryptable
        assert c.files.content(file_id).read() == expected
    # A last rotation moves everything to the newest version; older ones can retire.
    final = gateway.must("POST", f"/admin/v1/tenants/{unique}/kms/rotate")
    status = gateway.must("GET", f"/admin/v1/tenants/{unique}/kms")
    counts = {v["version"]: v["objects"] for v in status["versions"]}
    assert counts[final["primary_version"]] == len(written)
    assert all(n == 0 for v, n in counts.items() if v != final["primary_version"])


def test_retire_refuses_while_in_use_and_then_fails_closed(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    key = gateway.key(unique)
    file_id = upload(gateway, key, b"sealed under version one")
    tid = tenant_id(gateway, unique)
    old = gateway.must("GET", f"/admin/v1/tenants/{unique}/kms")["primary_version"]
    gateway.grant("admin:kms.retire", unique)  # a refused retire gives its grant back
    busy = gateway.admin("POST", f"/admin/v1/tenants/{unique}/kms/versions/{old}/retire")
    assert busy.status == 409 and "rotate first" in busy.body["error"]["message"]
    under_old = blob(gateway, tid, file_id).read_bytes()
    gateway.must("POST", f"/admin/v1/tenants/{unique}/kms/rotate")
    retired = gateway.must("POST", f"/admin/v1/tenants/{unique}/kms/versions/{old}/retire")
    assert next(v for v in retired["versions"] if v["version"] == old)["retired_at"]
    assert client(gateway, key).files.content(file_id).read() == b"sealed under version one"
    # A ciphertext still under the retired version (say, from a backup) fails closed.
    blob(gateway, tid, file_id).write_bytes(under_old)
    response = gateway.call("GET", f"/v1/files/{file_id}/content", key)
    assert response.status == 500 and b"version one" not in response.raw
    gateway.grant("admin:kms.retire", unique)
    bad = gateway.admin("POST", f"/admin/v1/tenants/{unique}/kms/versions/x/retire")
    assert bad.status == 400


def test_scheduled_rotation_follows_the_tenant_period(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    key = gateway.key(unique)
    file_id = upload(gateway, key, b"rotate me on schedule")
    config = gateway.must("PATCH", f"/admin/v1/tenants/{unique}/config", {"kek_rotation_days": 7})
    assert config["kek_rotation_days"] == 7 and config["retention"] == "none"
    before = gateway.must("GET", f"/admin/v1/tenants/{unique}/kms")["primary_version"]
    maintenance = gateway.app.maintenance
    maintenance.run_once(datetime.now(UTC) + timedelta(days=1))
    assert gateway.must("GET", f"/admin/v1/tenants/{unique}/kms")["primary_version"] == before
    maintenance.run_once(datetime.now(UTC) + timedelta(days=8))
    after = gateway.must("GET", f"/admin/v1/tenants/{unique}/kms")["primary_version"]
    assert after == before + 1
    assert client(gateway, key).files.content(file_id).read() == b"rotate me on schedule"
    tid = tenant_id(gateway, unique)
    events = [e for e in gateway.audit_events() if e.get("tenant_id") == tid]
    assert any(
        e["action"] == "system:kms.rotate" and e["reason"].startswith("scheduled") for e in events
    )
    off = gateway.must("PATCH", f"/admin/v1/tenants/{unique}/config", {"kek_rotation_days": 0})
    assert off["kek_rotation_days"] == 0
    maintenance.run_once(datetime.now(UTC) + timedelta(days=400))
    assert gateway.must("GET", f"/admin/v1/tenants/{unique}/kms")["primary_version"] == after


def test_bad_settings_are_refused(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    path = f"/admin/v1/tenants/{unique}/config"
    assert gateway.admin("PATCH", path, {"retention": "forever"}).status == 400
    assert gateway.admin("PATCH", path, {"retention_days": 0}).status == 400
    assert gateway.admin("PATCH", path, {"tenant_id": "x"}).status == 400
    key = gateway.key(unique, role="tenant_admin")
    assert gateway.admin("PATCH", path, {"retention": "none"}, key=key).status == 403


def test_deleting_a_tenant_crypto_shreds_it_alone(gateway: GatewayThread, unique: str) -> None:
    doomed, survivor = f"{unique}-x", f"{unique}-y"
    gateway.tenant(doomed)
    gateway.tenant(survivor)
    doomed_key, survivor_key = gateway.key(doomed), gateway.key(survivor)
    doomed_file = upload(gateway, doomed_key, b"doomed tenant's data")
    kept_file = upload(gateway, survivor_key, b"survivor's data")
    tid = tenant_id(gateway, doomed)
    copy = blob(gateway, tid, doomed_file).read_bytes()  # e.g. a backup taken earlier

    gateway.grant("admin:tenants.delete", doomed)
    deleted = gateway.must("DELETE", f"/admin/v1/tenants/{doomed}")
    assert deleted == {"tenant": doomed, "id": tid, "deleted": True, "keys_destroyed": True}
    kms = gateway.app.maintenance.keyring.kms
    with pytest.raises(DecryptionFailed):
        decrypt(copy, tenant_id=tid, kind="file", object_id=doomed_file, kms=kms)
    assert not (Path(gateway.settings.data_dir) / "blobs" / tid).exists()
    assert gateway.call("GET", "/v1/models", doomed_key).status == 401
    assert gateway.admin("GET", f"/admin/v1/tenants/{doomed}").status == 404
    assert client(gateway, survivor_key).files.content(kept_file).read() == b"survivor's data"
    actions = {e["action"] for e in gateway.audit_events() if e.get("tenant_id") == tid}
    assert "system:kms.destroy" in actions


def test_retention_is_off_by_default_and_encrypted_when_on(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    other = f"{unique}-o"
    gateway.tenant(unique)
    gateway.tenant(other)
    gateway.model(f"{unique}-m", upstream.url, grant=(unique,), upstream_model="fake")
    key = gateway.key(unique)
    admin_key = gateway.key(unique, role="tenant_admin")
    other_admin = gateway.key(other, role="tenant_admin")
    prompt = "remember the launch code zebra-4471"
    body = {"model": f"{unique}-m", "messages": [{"role": "user", "content": prompt}]}
    retention = gateway.app.maintenance.retention

    assert gateway.call("POST", "/v1/chat/completions", key, body).status == 200
    retention.flush()  # waits for the writer: nothing was queued
    assert gateway.call("GET", "/tenant/v1/exchanges", admin_key).body["data"] == []

    gateway.must("PATCH", f"/admin/v1/tenants/{unique}/config", {"retention": "encrypted"})
    assert gateway.call("POST", "/v1/chat/completions", key, body).status == 200
    retention.flush()
    listed = gateway.call("GET", "/tenant/v1/exchanges", admin_key).body["data"]
    assert len(listed) == 1 and listed[0]["model"] == f"{unique}-m"
    one = gateway.call("GET", f"/tenant/v1/exchanges/{listed[0]['id']}", admin_key).body
    assert prompt in one["request"] and one["response"]
    assert gateway.call("GET", f"/tenant/v1/exchanges/{listed[0]['id']}", other_admin).status == 404
    for path in Path(gateway.settings.data_dir).rglob("*"):
        if path.is_file():
            assert b"zebra-4471" not in path.read_bytes(), path

    assert retention.purge(datetime.now(UTC) + timedelta(days=29)) == 0
    assert retention.purge(datetime.now(UTC) + timedelta(days=31)) == 1
    assert gateway.call("GET", "/tenant/v1/exchanges", admin_key).body["data"] == []


def test_cli_config_retire_and_delete(gateway: GatewayThread, unique: str, tmp_path: Path) -> None:
    from tests.cli.test_cli import bulkhead

    def cli(*args: str) -> str:
        result = bulkhead("--server", gateway.url, "--key", gateway.admin_key, *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    gateway.tenant(unique)
    upload(gateway, gateway.key(unique), b"cli data")
    out = cli("tenant", "config", unique, "--retention", "encrypted", "--retention-days", "7")
    assert "encrypted" in out and "7" in out
    assert '"kek_rotation_days": 90' in cli("tenant", "config", unique, "--json")
    cli("kms", "rotate", "--tenant", unique)
    gateway.grant("admin:kms.retire", unique)
    assert "retired_at" in cli("kms", "retire", "--tenant", unique, "--version", "1", "--json")
    refused = bulkhead(
        "--server", gateway.url, "--key", gateway.admin_key, "tenant", "delete", unique,
        cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode == 2 and "--yes" in refused.stderr
    gateway.grant("admin:tenants.delete", unique)
    assert '"keys_destroyed": true' in cli("tenant", "delete", unique, "--yes", "--json")

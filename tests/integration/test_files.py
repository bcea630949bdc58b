"""`/v1/files`: encrypted per tenant, isolated, quota-bound, and rotation-proof."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import openai
import pytest

from tests.support.gateway import GatewayThread

SECRET = b"tenant A's private training data: 4111-1111-1111-1111 " * 50


@pytest.fixture(scope="module")
def keys(gateway: GatewayThread) -> dict[str, str]:
    gateway.tenant("files-a")
    gateway.tenant("files-b")
    return {"a": gateway.key("files-a"), "b": gateway.key("files-b")}


def client(gw: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def upload(gw: GatewayThread, key: str, data: bytes = SECRET, name: str = "train.jsonl") -> str:
    created = client(gw, key).files.create(file=(name, io.BytesIO(data)), purpose="fine-tune")
    assert created.bytes == len(data) and created.filename == name
    return str(created.id)


def test_round_trip_with_the_sdk(gateway: GatewayThread, keys: dict[str, str]) -> None:
    file_id = upload(gateway, keys["a"])
    c = client(gateway, keys["a"])
    assert c.files.retrieve(file_id).purpose == "fine-tune"
    assert file_id in {f.id for f in c.files.list()}
    assert c.files.content(file_id).read() == SECRET
    assert c.files.delete(file_id).deleted is True
    with pytest.raises(openai.NotFoundError):
        c.files.retrieve(file_id)


def test_listing_pages_through_every_file_once(gateway: GatewayThread) -> None:
    gateway.tenant("files-pages")
    key = gateway.key("files-pages")
    made = [upload(gateway, key, b"page %d" % i, f"f{i}.jsonl") for i in range(5)]
    c = client(gateway, key)
    paged = [f.id for f in c.files.list(limit=2)]
    assert sorted(paged) == sorted(made) and len(paged) == 5
    assert [f.id for f in c.files.list(order="asc", limit=3)] == made
    first = c.files.list(limit=2, order="asc")
    assert first.has_more is True and [f.id for f in first.data] == made[:2]


def test_listing_rejects_bad_paging(gateway: GatewayThread, keys: dict[str, str]) -> None:
    c = client(gateway, keys["a"])
    with pytest.raises(openai.BadRequestError):
        c.files.list(limit=0)
    with pytest.raises(openai.BadRequestError):
        c.files.list(order="sideways")  # type: ignore[arg-type]
    foreign = upload(gateway, keys["b"])
    with pytest.raises(openai.NotFoundError) as unknown:  # another tenant's cursor is unknown
        c.files.list(after=foreign)
    assert unknown.value.body["param"] == "after"  # type: ignore[index]


def test_another_tenant_gets_not_found(gateway: GatewayThread, keys: dict[str, str]) -> None:
    file_id = upload(gateway, keys["a"])
    b = client(gateway, keys["b"])
    assert file_id not in {f.id for f in b.files.list()}
    for attempt in (
        lambda: b.files.retrieve(file_id),
        lambda: b.files.content(file_id),
        lambda: b.files.delete(file_id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert client(gateway, keys["a"]).files.content(file_id).read() == SECRET


def test_no_plaintext_on_disk(gateway: GatewayThread, keys: dict[str, str]) -> None:
    upload(gateway, keys["a"])
    needle = b"private training data"
    for path in Path(gateway.settings.data_dir).rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path


def test_blob_copied_over_another_fails_closed(
    gateway: GatewayThread, keys: dict[str, str]
) -> None:
    a_file = upload(gateway, keys["a"])
    b_file = upload(gateway, keys["b"], b"tenant B's data", "b.jsonl")
    root = Path(gateway.settings.data_dir) / "blobs"
    a_tenant = gateway.admin("GET", "/admin/v1/tenants/files-a").body["id"]
    b_tenant = gateway.admin("GET", "/admin/v1/tenants/files-b").body["id"]
    shutil.copyfile(
        root / b_tenant / "file" / f"{b_file}.blob", root / a_tenant / "file" / f"{a_file}.blob"
    )
    response = gateway.call("GET", f"/v1/files/{a_file}/content", keys["a"])
    assert response.status == 500
    assert b"tenant B" not in response.raw
    assert set(response.body["error"]) == {"message", "type", "param", "code"}


def test_rotation_rewraps_and_keeps_everything_readable(
    gateway: GatewayThread, keys: dict[str, str]
) -> None:
    before = upload(gateway, keys["a"], b"written before rotation")
    status = gateway.must("GET", "/admin/v1/tenants/files-a/kms")
    rotated = gateway.must("POST", "/admin/v1/tenants/files-a/kms/rotate")
    assert rotated["primary_version"] == status["primary_version"] + 1
    after = upload(gateway, keys["a"], b"written after rotation")
    c = client(gateway, keys["a"])
    assert c.files.content(before).read() == b"written before rotation"
    assert c.files.content(after).read() == b"written after rotation"
    assert "material" not in str(rotated) and "key" not in str(rotated["versions"]).lower()


def test_bad_uploads(gateway: GatewayThread, keys: dict[str, str]) -> None:
    json_body = gateway.call("POST", "/v1/files", keys["a"], {"purpose": "fine-tune"})
    assert json_body.status == 400
    with pytest.raises(openai.BadRequestError):
        client(gateway, keys["a"]).files.create(file=("x", io.BytesIO(b"x")), purpose="nope")  # type: ignore[arg-type]


def test_storage_quota(gateway: GatewayThread, keys: dict[str, str]) -> None:
    from sqlalchemy import update

    from bulkhead.store.schema import TenantRow

    gateway.tenant("files-small")
    key = gateway.key("files-small")
    with gateway.app.db.platform_transaction() as session:
        session.execute(
            update(TenantRow)
            .where(TenantRow.name == "files-small")
            .values(quotas={"storage_bytes": 1000})
        )
    gateway.app.catalog.reload()  # as a PATCH through the admin API would
    upload(gateway, key, b"x" * 900)
    with pytest.raises(openai.APIStatusError) as info:
        upload(gateway, key, b"y" * 200)
    assert info.value.status_code == 413


def test_platform_key_cannot_use_files(gateway: GatewayThread) -> None:
    assert gateway.call("GET", "/v1/files", gateway.admin_key).status == 403


def test_kms_cli_shows_versions(
    gateway: GatewayThread, keys: dict[str, str], tmp_path: Path
) -> None:
    from tests.cli.test_cli import bulkhead

    result = bulkhead(
        "--server",
        gateway.url,
        "--key",
        gateway.admin_key,
        "kms",
        "status",
        "--tenant",
        "files-b",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert '"primary_version"' in result.stdout

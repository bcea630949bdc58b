"""Tenant data at rest and on its way in: sealed secrets, storage quotas, imported models.

Issue 12 items 9 (rotating then retiring a tenant KEK broke TOTP sign-in), 22 and 27
(crafted model files: 500s at import, restart loops in the worker), 23 (concurrent
uploads overshot the storage quota) and 25 (the CLI import followed symlinks out of the
model directory).  Each test attacks the way a tenant (or an operator handed a hostile
model directory) would, on SQLite and PostgreSQL where a database is involved.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bulkhead.identity import totp
from tests.integration.test_sign_in import enroll, login, person
from tests.support.gateway import GatewayThread, http

# Item 9: every secret sealed under a tenant's KEK moves with rotation ------------------


def kms_path(tenant: str) -> str:
    return f"/admin/v1/tenants/{tenant}/kms"


def objects_by_version(gw: GatewayThread, tenant: str) -> dict[int, int]:
    status = gw.must("GET", kms_path(tenant))
    return {v["version"]: v["objects"] for v in status["versions"]}


def retire(gw: GatewayThread, tenant: str, version: int) -> Any:
    gw.grant("admin:kms.retire", tenant)  # a refused retire gives its grant back
    return gw.admin("POST", f"{kms_path(tenant)}/versions/{version}/retire")


def test_the_readme_procedure_keeps_totp_sign_in_working(
    gateway: GatewayThread, unique: str
) -> None:
    """`kms rotate` then `kms retire --version 1`: an enrolled admin still signs in."""
    gateway.tenant(unique)
    person(gateway, unique, "bob", ["tenant_admin"])
    secret, _ = enroll(gateway, unique, "bob")
    old = gateway.must("GET", kms_path(unique))["primary_version"]
    # No file, no model, no retained exchange: the TOTP secret alone uses the version.
    assert objects_by_version(gateway, unique) == {old: 1}
    busy = retire(gateway, unique, old)
    assert busy.status == 409 and "rotate first" in busy.body["error"]["message"]
    rotated = gateway.must("POST", f"{kms_path(unique)}/rotate")
    assert rotated["rewrapped"] == 1 and rotated["unreadable"] == []
    assert objects_by_version(gateway, unique) == {old: 0, rotated["primary_version"]: 1}
    assert retire(gateway, unique, old).status == 200
    signed = login(gateway, unique, "bob", totp=totp.totp(secret, time.time() + 30))
    assert signed.status == 200, signed.body
    assert signed.body["mfa"] is True


def test_a_pending_enrolment_survives_rotation_and_retirement(
    gateway: GatewayThread, unique: str
) -> None:
    """An enrolment started before the rotation is confirmed after the old version retired."""
    from tests.integration.test_sign_in import PASSWORD, secret_of

    gateway.tenant(unique)
    person(gateway, unique, "eve", ["end_user"])
    who = {"tenant": unique, "principal": "eve", "password": PASSWORD}
    started = gateway.call("POST", "/auth/v1/mfa/enroll", None, who)
    assert started.status == 200, started.body
    secret = secret_of(started.body["otpauth_uri"])
    old = gateway.must("GET", kms_path(unique))["primary_version"]
    assert objects_by_version(gateway, unique) == {old: 1}
    gateway.must("POST", f"{kms_path(unique)}/rotate")
    assert retire(gateway, unique, old).status == 200
    code = totp.totp(secret, time.time())
    confirmed = gateway.call("POST", "/auth/v1/mfa/confirm", None, {**who, "totp": code})
    assert confirmed.status == 200, confirmed.body


# Binary columns that hold no secret: hashes, public keys and the audit log's own bytes.
NOT_SECRET = {
    "api_keys.secret_hash",
    "audit_entries.leaf_hash",
    "audit_entries.body",
    "audit_checkpoints.root",
    "audit_checkpoints.note",
    "audit_checkpoints.border",  # the compact range of a signed tree: public hashes
    "sign_in_sessions.secret_hash",
    "enrolments.secret_hash",
}
# Where the product seals something, and the holder the keyring finds it in.
SEALERS = {
    "bulkhead/store/files.py": "blob",
    "bulkhead/store/retention.py": "blob",
    "bulkhead/store/artifacts.py": "blob",
    "bulkhead/identity/totp_vault.py": "column",
    "bulkhead/store/upstreams.py": "column",
    "bulkhead/store/session_keys.py": "column",
    # The audit signing seed, the CA's key and the cache-salt secret (`platform_keys`).
    "bulkhead/store/platform_keys.py": "column",
    # Vector store chunk segments (issue 18): the sealed column of `vector_store_chunks`.
    "bulkhead/store/vectors.py": "column",
    "bulkhead/store/vector_graphs.py": "blob",  # a large store's saved HNSW graph
    # A tenant IdP's client secret for the console's code exchange (issue 20).
    "bulkhead/identity/oidc_login.py": "column",
}
SEALING_CALLS = {"encrypt", "encrypt_stream", "encrypt_stream_bytes"}


def test_every_binary_column_is_declared_sealed_or_holds_no_secret() -> None:
    """A new column of sealed bytes must be declared, or the keyring never re-wraps it."""
    from sqlalchemy import LargeBinary

    from bulkhead.identity.oidc_login import SEALED_KIND as IDP_CLIENT_SECRET
    from bulkhead.identity.totp_vault import KIND
    from bulkhead.store.platform_keys import SEALED_KIND as PLATFORM_KEY
    from bulkhead.store.schema import Base
    from bulkhead.store.sealed import declared_columns
    from bulkhead.store.session_keys import KIND as SESSION_KEY
    from bulkhead.store.upstreams import KIND as CREDENTIAL
    from bulkhead.store.vectors import KIND as VECTORS

    declared = {d.place: d.sealing for d in declared_columns()}
    binary = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    assert binary - NOT_SECRET == set(declared), "declare it with schema.sealed(...)"
    assert {s.kind for s in declared.values()} == {
        KIND,
        CREDENTIAL,
        SESSION_KEY,
        PLATFORM_KEY,
        VECTORS,
        IDP_CLIENT_SECRET,
    }
    for place, sealing in declared.items():
        table = Base.metadata.tables[place.split(".")[0]]
        columns = {sealing.object_id} | ({sealing.owner} if sealing.owner else set())
        assert columns <= set(table.columns.keys())


def test_everything_the_product_seals_is_in_a_place_the_keyring_walks() -> None:
    """Every module calling a sealing recipe is known, with the holder that finds its output."""
    import ast
    from pathlib import Path

    import bulkhead

    root = Path(bulkhead.__file__).parent
    callers = set()
    for path in root.rglob("*.py"):
        relative = "bulkhead/" + str(path.relative_to(root))
        if relative.startswith("bulkhead/crypto/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name in SEALING_CALLS:
                    callers.add(relative)
    assert callers == set(SEALERS), "a new sealed object: make its holder known to the keyring"


# Item 23: the storage quota holds under concurrent uploads, across processes -----------

QUOTA = 1_000_000
PIECE = 100_000


def file_service(root: Path, db_url: str) -> tuple[Any, Any]:
    """A `FileService` on the shared database, blob store and KMS under `root`."""
    from bulkhead.crypto import LocalKms, load_or_create_master_key
    from bulkhead.store import Database
    from bulkhead.store.blobs import BlobStore
    from bulkhead.store.files import FileService
    from bulkhead.store.keyring import TenantKeyring

    db = Database(db_url)
    (root / "kms").mkdir(mode=0o700, exist_ok=True)
    kms = LocalKms(root / "kms", load_or_create_master_key(root / "master.key"))
    keyring = TenantKeyring(kms, BlobStore(root / "blobs"))
    return db, FileService(db, keyring, max_file_bytes=10 * PIECE)


def upload_all(root: Path, db_url: str, tenant: Any, count: int, start: Any) -> int:
    """`count` uploads at once from this process's threads; how many were accepted."""
    from bulkhead.errors import PayloadTooLarge

    db, files = file_service(root, db_url)
    accepted = []

    def one(i: int) -> None:
        start.wait()
        try:
            files.upload(tenant, f"f{i}.jsonl", "batch", bytes([i % 251]) * PIECE)
            accepted.append(i)
        except PayloadTooLarge as exc:
            assert exc.code == "storage_quota_exceeded"

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    db.dispose()
    return len(accepted)


def _process(root: Path, db_url: str, count: int, start: Any, out: Any) -> None:
    from bulkhead.store import Database, repo

    db = Database(db_url)
    with db.platform_transaction() as session:
        tenant = repo.get_tenant(session, "quota")
    db.dispose()
    out.put(upload_all(root, db_url, tenant, count, start))


def quota_tenant(root: Path, db_url: str, db_admin_url: str | None) -> Any:
    from bulkhead.domain import Tier
    from bulkhead.store import Database, repo, upgrade

    db = Database(db_url)
    upgrade(db, db_admin_url)
    with db.platform_transaction() as session:
        repo.create_tenant(session, "quota", Tier.SHARED)
        tenant = repo.set_tenant_limits(session, "quota", {"storage_bytes": QUOTA})
    file_service(root, db_url)[1].keyring.ensure(tenant.id)
    db.dispose()
    return tenant


def stored(db_url: str, tenant_id: str) -> int:
    from sqlalchemy import func, select

    from bulkhead.store import Database
    from bulkhead.store.schema import FileRow

    db = Database(db_url)
    with db.platform_transaction() as session:
        total = session.execute(
            select(func.coalesce(func.sum(FileRow.bytes), 0)).where(FileRow.tenant_id == tenant_id)
        ).scalar_one()
    db.dispose()
    return int(total)


def test_concurrent_uploads_never_overshoot_the_storage_quota(
    tmp_path: Path, db_url: str, db_admin_url: str | None
) -> None:
    tenant = quota_tenant(tmp_path, db_url, db_admin_url)
    accepted = upload_all(tmp_path, db_url, tenant, 24, threading.Barrier(24))
    assert stored(db_url, tenant.id) == accepted * PIECE == QUOTA  # overshoot: 0 bytes


def test_uploads_from_several_processes_never_overshoot_the_storage_quota(
    tmp_path: Path, db_url: str, db_admin_url: str | None
) -> None:
    """Gateway replicas on one database: each process checks the quota on its own."""
    tenant = quota_tenant(tmp_path, db_url, db_admin_url)
    spawn = multiprocessing.get_context("spawn")
    start, out = spawn.Barrier(3 * 8), spawn.Queue()
    processes = [
        spawn.Process(target=_process, args=(tmp_path, db_url, 8, start, out)) for _ in range(3)
    ]
    for process in processes:
        process.start()
    accepted = sum(out.get(timeout=180) for _ in processes)
    for process in processes:
        process.join(30)
    assert stored(db_url, tenant.id) == accepted * PIECE == QUOTA  # overshoot: 0 bytes


# Items 22 and 27: crafted model files get one clear 400, and nothing unloadable is kept -


def safetensors(tensors: dict[str, Any], data: bytes, *, raw_header: bytes | None = None) -> bytes:
    header = raw_header if raw_header is not None else json.dumps(tensors).encode()
    return struct.pack("<Q", len(header)) + header + data


def tensor(dtype: str, shape: list[Any], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


GOOD_TENSORS = {"a": tensor("F32", [2, 2], 0, 16), "b": tensor("BF16", [4], 16, 24)}
GOOD_WEIGHTS = safetensors(GOOD_TENSORS, bytes(range(24)))
GOOD_CONFIG = json.dumps({"model_type": "llama", "eos_token_id": 0}).encode()
GOOD_TOKENIZER = json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}}})


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def with_tensors(**changes: Any) -> bytes:
    """The good weights with some header entries replaced (None drops one)."""
    tensors = {k: v for k, v in {**GOOD_TENSORS, **changes}.items() if v is not None}
    return safetensors(tensors, bytes(range(24)))


# Each case: the file it replaces (or adds) and its bytes.  Named like the bad inputs of
# transparency-dev/merkle's test data: each must be refused, and said to be refused.
BAD_WEIGHTS: dict[str, bytes] = {
    "truncated-data": GOOD_WEIGHTS[:-1],
    "trailing-bytes": GOOD_WEIGHTS + b"\0",
    "truncated-header": GOOD_WEIGHTS[:20],
    "header-longer-than-file": struct.pack("<Q", 1 << 40) + b"{}",
    "header-length-zero": struct.pack("<Q", 0),
    "header-not-json": safetensors({}, b"", raw_header=b"{not json}"),
    "header-not-utf8": safetensors({}, b"", raw_header=b'{"\xff": 1}'),
    "header-a-list": safetensors({}, b"", raw_header=b"[1, 2]"),
    "header-deeply-nested": safetensors({}, b"", raw_header=b'{"x": ' + deep(100_000) + b"}"),
    "metadata-deeply-nested": safetensors(
        {}, b"", raw_header=b'{"__metadata__": ' + deep(200) + b"}"
    ),
    "metadata-not-strings": safetensors({"__metadata__": {"a": 1}, **GOOD_TENSORS}, bytes(24)),
    "overlapping-ranges": with_tensors(b=tensor("BF16", [4], 8, 16)),
    "gap-between-ranges": safetensors(
        {"a": tensor("F32", [2, 2], 0, 16), "b": tensor("BF16", [4], 18, 26)}, bytes(26)
    ),
    "range-shorter-than-shape": with_tensors(a=tensor("F32", [2, 3], 0, 16)),
    "range-longer-than-shape": with_tensors(a=tensor("F32", [1, 2], 0, 16)),
    "range-past-the-end": with_tensors(b=tensor("BF16", [8], 16, 32)),
    "range-reversed": with_tensors(b=tensor("BF16", [4], 24, 16)),
    "range-negative": with_tensors(a=tensor("F32", [2, 2], -16, 0)),
    "range-not-integers": with_tensors(a=tensor("F32", [2, 2], 0.0, 16.0)),
    "range-three-numbers": with_tensors(a={**GOOD_TENSORS["a"], "data_offsets": [0, 8, 16]}),
    "huge-shape": with_tensors(a=tensor("F32", [1 << 62, 1 << 62], 0, 16)),
    "huge-rank": with_tensors(a=tensor("F32", [1] * 10_000 + [4], 0, 16)),
    "negative-dimension": with_tensors(a=tensor("F32", [-2, -2], 0, 16)),
    "boolean-dimension": with_tensors(a=tensor("F32", [True, 4], 0, 16)),
    "unknown-dtype": with_tensors(a=tensor("F128", [1], 0, 16)),
    "dtype-the-worker-lacks-f8": with_tensors(a=tensor("F8_E4M3", [16], 0, 16)),
    "dtype-the-worker-lacks-u16": with_tensors(b=tensor("U16", [4], 16, 24)),
    "dtype-the-worker-lacks-u32": with_tensors(a=tensor("U32", [4], 0, 16)),
    "dtype-the-worker-lacks-u64": with_tensors(a=tensor("U64", [2], 0, 16)),
    "dtype-not-a-string": with_tensors(a=tensor(4, [4], 0, 16)),  # type: ignore[arg-type]
    "entry-not-an-object": with_tensors(a=[0, 16]),
    "entry-with-extra-key": with_tensors(a={**GOOD_TENSORS["a"], "exec": "x"}),
    "entry-missing-shape": with_tensors(a={"dtype": "F32", "data_offsets": [0, 16]}),
}
LLAMA = b'{"model_type": "llama", '
BAD_FILES: dict[str, tuple[str, bytes | None]] = {
    **{f"model.safetensors/{c}": ("model.safetensors", data) for c, data in BAD_WEIGHTS.items()},
    "config/deeply-nested": ("config.json", LLAMA + b'"x": ' + deep(100_000) + b"}"),
    "config/nested-past-the-bound": ("config.json", LLAMA + b'"x": ' + deep(100) + b"}"),
    "config/only-nesting": ("config.json", deep(100_000)),
    "config/a-list": ("config.json", b"[]"),
    "config/no-model-type": ("config.json", b'{"eos_token_id": 0}'),
    "config/model-type-not-a-string": ("config.json", b'{"model_type": 1, "eos_token_id": 0}'),
    "config/eos-token-id-a-string": ("config.json", LLAMA + b'"eos_token_id": "x"}'),
    "config/too-large": ("config.json", LLAMA + b'"pad": "' + b"x" * (2 << 20) + b'"}'),
    "tokenizer/missing": ("tokenizer.json", None),
    "tokenizer/deeply-nested": ("tokenizer.json", deep(100_000)),
    "tokenizer/a-string": ("tokenizer.json", b'"x"'),
    "generation-config/deeply-nested": ("generation_config.json", deep(100_000)),
    "second-weights/duplicate-tensor": ("model-2.safetensors", GOOD_WEIGHTS),
}  # fmt: skip


def model_upload(replace: str | None = None, data: bytes | None = None) -> bytes:
    from bulkhead.runtime.worker import frames

    files = {
        "config.json": GOOD_CONFIG,
        "tokenizer.json": GOOD_TOKENIZER.encode(),
        "model.safetensors": GOOD_WEIGHTS,
    }
    if replace is not None:
        files.pop(replace, None)
        if data is not None:
            files[replace] = data
    return b"".join(frames.encode(sorted(files.items())))


def import_model(gw: GatewayThread, tenant: str, model: str, raw: bytes) -> Any:
    path = f"/admin/v1/tenants/{tenant}/model-artifacts?model={model}"
    return http("POST", gw.url + path, gw.admin_key, raw=raw)


@pytest.fixture(scope="module")
def importer(gateway: GatewayThread) -> str:
    gateway.tenant("importer")
    accepted = import_model(gateway, "importer", "good-model", model_upload())
    assert accepted.status == 201, accepted.body  # the baseline the bad cases depart from
    return "importer"


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_crafted_model_files_are_refused_with_one_clear_400(
    gateway: GatewayThread, importer: str, case: str
) -> None:
    name, data = BAD_FILES[case]
    model = "bad-" + case.replace("/", "-").replace(".", "-")[:100]
    refused = import_model(gateway, importer, model, model_upload(name, data))
    assert refused.status == 400, (case, refused.status, refused.body)
    error = refused.body["error"]
    assert error["type"] == "invalid_request_error" and name in error["message"], error
    models = gateway.must("GET", "/admin/v1/models")["data"]
    assert model not in {m["name"] for m in models}  # nothing registered, no worker to loop


@pytest.mark.local
def test_the_worker_refuses_what_import_refuses_and_has_the_dtypes_import_allows() -> None:
    """Models stored before these checks meet the same parser in the worker: a clean refusal."""
    import torch

    from bulkhead.runtime.worker.hf_causal import _DTYPES, ModelFilesError, tensors_from_buffer
    from bulkhead.runtime.worker.model_format import DTYPE_SIZES

    assert {k: torch.empty((), dtype=v).element_size() for k, v in _DTYPES.items()} == DTYPE_SIZES
    assert set(tensors_from_buffer(GOOD_WEIGHTS)) == {"a", "b"}
    for case, data in BAD_WEIGHTS.items():
        with pytest.raises(ModelFilesError):
            tensors_from_buffer(data)
            pytest.fail(case)


# Loads at import, fails in the architecture: the weights do not fit a tiny llama.
MISFIT = {
    "config.json": json.dumps(
        {
            "model_type": "llama",
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "vocab_size": 4,
            "eos_token_id": 0,
        }
    ).encode(),
    "tokenizer.json": GOOD_TOKENIZER.encode(),
    "model.safetensors": GOOD_WEIGHTS,
}


@pytest.mark.local
def test_the_supervisor_gives_up_on_a_model_that_never_loads() -> None:
    """No restart loop: a few failed starts, then state "failed" and a clear 503."""
    import asyncio

    from bulkhead.errors import Unavailable
    from bulkhead.runtime import WorkerSpec, WorkerSupervisor
    from bulkhead.runtime.sandbox import Sandbox, SandboxMode, SandboxPolicy
    from bulkhead.store.model_files import check_files

    check_files(sorted(MISFIT.items()))  # import would accept it
    supervisor = WorkerSupervisor(
        sandbox=Sandbox(SandboxPolicy(mode=SandboxMode.OFF)),
        max_backoff_s=0.2,
        max_failed_starts=3,
    )
    spec = WorkerSpec(
        key="d1",
        kind="hf-causal",
        model_name="misfit",
        load_weights=lambda: sorted(MISFIT.items()),
    )

    async def main() -> dict[str, Any]:
        try:
            supervisor.sync([spec])
            deadline = time.monotonic() + 240
            while supervisor.status()[0]["state"] != "failed":
                assert time.monotonic() < deadline, supervisor.status()
                await asyncio.sleep(0.2)
            settled = supervisor.status()[0]
            await asyncio.sleep(2)  # no further start after giving up
            assert supervisor.status()[0] == settled
            with pytest.raises(Unavailable, match="failed to start"):
                supervisor.target("d1", 5)
            return settled
        finally:
            await supervisor.close()

    status = asyncio.run(main())
    assert status["restarts"] == 2 and not status["ready"]
    assert status["last_exit"] == "gave up after 3 failed starts (exit 1)"


# Item 25: the CLI import reads the model directory's own regular files, nothing else ----

OUTSIDE = b"root:$6$not-really-a-shadow-file:19000:0:99999:7:::\n"


def model_directory(root: Path) -> Path:
    directory = root / "model"
    directory.mkdir()
    (directory / "config.json").write_bytes(GOOD_CONFIG)
    (directory / "tokenizer.json").write_text(GOOD_TOKENIZER)
    (directory / "model.safetensors").write_bytes(GOOD_WEIGHTS)
    return directory


def planted(root: Path, how: str) -> tuple[Path, str]:
    """A model directory with one hostile entry planted by `how`; returns it and its name."""
    directory = model_directory(root)
    secret = root / "shadow"
    secret.write_bytes(OUTSIDE)
    if how == "symlink-to-a-file-outside":
        (directory / "vocab.txt").symlink_to(secret)
        return directory, "vocab.txt"
    if how == "symlink-replacing-a-model-file":
        (directory / "tokenizer.json").unlink()
        (directory / "tokenizer.json").symlink_to(secret)
        return directory, "tokenizer.json"
    if how == "relative-symlink-climbing-out":
        (directory / "merges.txt").symlink_to("../shadow")
        return directory, "merges.txt"
    if how == "hard-link-to-a-file-outside":
        os.link(secret, directory / "vocab.txt")
        return directory, "vocab.txt"
    if how == "symlink-to-a-directory":
        (directory / "vocab.json").symlink_to(root)
        return directory, "vocab.json"
    if how == "fifo":
        os.mkfifo(directory / "vocab.txt")
        return directory, "vocab.txt"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "symlink-to-a-file-outside",
        "symlink-replacing-a-model-file",
        "relative-symlink-climbing-out",
        "hard-link-to-a-file-outside",
        "symlink-to-a-directory",
        "fifo",
    ],
)
def test_the_cli_import_never_reads_outside_the_model_directory(
    gateway: GatewayThread, importer: str, tmp_path: Path, how: str
) -> None:
    from tests.cli.test_cli import as_admin

    directory, name = planted(tmp_path, how)
    model = f"planted-{how}"
    args = ("model", "import", model, str(directory), "--tenant", importer)
    result = as_admin(gateway, tmp_path, *args)
    assert result.returncode != 0, (how, result.stdout)
    assert "Traceback" not in result.stderr and name in result.stderr, result.stderr
    models = gateway.must("GET", "/admin/v1/models")["data"]
    assert model not in {m["name"] for m in models}


def test_the_cli_reader_opens_nothing_through_a_link(tmp_path: Path) -> None:
    """A file swapped for a link after the listing is refused at open (O_NOFOLLOW)."""
    import typer

    from bulkhead.cli import model as cli_model

    directory = model_directory(tmp_path)
    (tmp_path / "shadow").write_bytes(OUTSIDE)
    read = cli_model.read_regular_file

    def swapped(dir_fd: int, name: str) -> bytes:
        if name == "tokenizer.json":
            os.unlink(name, dir_fd=dir_fd)
            os.symlink(tmp_path / "shadow", name, dir_fd=dir_fd)
        return read(dir_fd, name)

    cli_model.read_regular_file = swapped  # type: ignore[assignment]
    try:
        with pytest.raises(typer.Exit):
            cli_model.read_model_directory(directory)
    finally:
        cli_model.read_regular_file = read  # type: ignore[assignment]
    (tmp_path / "again").mkdir()
    files = dict(cli_model.read_model_directory(model_directory(tmp_path / "again")))
    assert set(files) == {"config.json", "tokenizer.json", "model.safetensors"}


@pytest.mark.parametrize(
    "name",
    ["../config.json", "sub/config.json", "/etc/shadow", ".config.json", "config.json\x00", "..",
     "vocab.txt/", "con fig.json", "vocab.txt\n"],
)  # fmt: skip
def test_the_server_refuses_file_names_with_path_components(
    gateway: GatewayThread, importer: str, name: str
) -> None:
    from bulkhead.runtime.worker import frames

    files = [("config.json", GOOD_CONFIG), ("tokenizer.json", GOOD_TOKENIZER.encode())]
    files += [("model.safetensors", GOOD_WEIGHTS), (name, b"x")]
    refused = import_model(gateway, importer, "pathy", b"".join(frames.encode(files)))
    assert refused.status == 400, refused.body
    assert "not an accepted model file" in refused.body["error"]["message"]


def test_files_stored_before_the_upgrade_count_toward_the_quota(
    tmp_path: Path, db_url: str, db_admin_url: str | None
) -> None:
    """Migration 0021 starts each tenant's counter from the files it already has."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, insert

    from bulkhead.errors import PayloadTooLarge
    from bulkhead.store import Database, migrate, repo, upgrade
    from bulkhead.store.schema import FileRow, TenantRow, utcnow

    engine = create_engine(db_admin_url or db_url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
        config.attributes["connection"] = connection
        command.upgrade(config, "0017")
        connection.execute(
            insert(TenantRow).values(
                id="ten_old",
                name="old",
                tier="shared",
                status="active",
                quotas={"storage_bytes": QUOTA},
                config={},
                attributes={},
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        for i in range(9):
            row = {"id": f"file-{i}", "tenant_id": "ten_old", "filename": "f", "purpose": "batch"}
            connection.execute(insert(FileRow).values(**row, bytes=PIECE, created_at=utcnow()))
    engine.dispose()
    db = Database(db_url)
    upgrade(db, db_admin_url)
    with db.platform_transaction() as session:
        tenant = repo.get_tenant(session, "old")
    db.dispose()
    _, files = file_service(tmp_path, db_url)
    files.upload(tenant, "tenth.jsonl", "batch", b"x" * PIECE)
    with pytest.raises(PayloadTooLarge):
        files.upload(tenant, "eleventh.jsonl", "batch", b"x")

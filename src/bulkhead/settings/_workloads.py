"""The settings of what tenants send and run: body and file sizes, vector stores, fine-tuning,
model imports, and the KMS that seals it all (a group of `bulkhead.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkhead.settings import _checks as check
from bulkhead.settings import _help as h
from bulkhead.settings._checks import KMS_BACKENDS
from bulkhead.settings._core import Core
from bulkhead.settings._table import setting

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Workloads(Core):
    """Request sizes, vector stores, fine-tuning, model imports and the KMS."""

    max_body_bytes: int = setting(
        "BULKHEAD_MAX_BODY_BYTES",
        8 * MiB,
        lo=1024,
        hi=1 << 31,
        help="larger bodies get 413",
        shown="8 MiB",
    )
    max_file_bytes: int = setting(
        "BULKHEAD_MAX_FILE_BYTES",
        32 * MiB,
        lo=1024,
        hi=1 << 34,
        help="largest `/v1/files` upload",
        shown="32 MiB",
    )
    # Vector stores: the plaintext indexes one replica keeps loaded (least recently used go).
    vector_cache_mb: int = setting(
        "BULKHEAD_VECTOR_CACHE_MB", 512, lo=16, hi=1 << 20, help=h.VECTOR_CACHE
    )
    # Fine-tuning (`finetune.queue`): jobs this replica trains at once, all tenants together;
    # each tenant also has its own limit (`fine_tuning_concurrency`).  0 turns it off.
    fine_tuning_jobs: int = setting(
        "BULKHEAD_FINE_TUNING_JOBS",
        0,
        lo=0,
        hi=64,
        help="fine-tuning jobs this replica runs at once; 0 = off (`/v1/fine_tuning` answers 404)",
    )
    # The replicas share one queue in the database (`finetune.lease`): each heartbeats its
    # jobs, claims queued ones and sees cancels made elsewhere every poll.
    fine_tuning_poll_s: float = setting(
        "BULKHEAD_FINE_TUNING_POLL_MS",
        1.0,
        lo=10,
        hi=60_000,
        help="how often a replica renews its fine-tuning leases, claims queued jobs and sees "
        "cancels made through another replica (ms)",
        shown="1000",
        parse=check.millis,
    )
    fine_tuning_lease_s: float = setting(
        "BULKHEAD_FINE_TUNING_LEASE_MS",
        30.0,
        lo=500,
        hi=3_600_000,
        help="a running fine-tuning job whose replica stops renewing it for this long fails (ms)",
        shown="30000",
        parse=check.millis,
    )
    # Where the jobs train: this host's sandbox (`finetune.runner`) or, on Kubernetes, a Job
    # per job in the tenant's training namespace (`k8s.jobs.KubeRunner`, in-cluster only),
    # rendered with the cluster settings of `k8s_config` (the file `bulkhead k8s` reads).
    fine_tuning_runner: str = setting(
        "BULKHEAD_FINE_TUNING_RUNNER",
        "sandbox",
        help="where fine-tuning jobs run: `sandbox` (a sandboxed process on this host) or "
        "`kubernetes` (a Job per job, from inside the cluster; docs/kubernetes.md)",
        choices=("sandbox", "kubernetes"),
    )
    k8s_config: str | None = setting(
        "BULKHEAD_K8S_CONFIG",
        None,
        help="the cluster's settings (YAML or JSON, as `bulkhead k8s --config`) for the "
        "`kubernetes` fine-tuning runner",
        shown="none",
    )
    # A model import is one request, buffered in memory: platform admins only.
    max_model_bytes: int = setting(
        "BULKHEAD_MAX_MODEL_BYTES",
        4096 * MiB,
        lo=1024,
        hi=1 << 40,
        help="largest model import (one request, buffered in memory; platform admins only)",
        shown="4 GiB",
    )
    kms_master_key: str | None = setting(
        "BULKHEAD_KMS_MASTER_KEY",
        None,
        help="base64 256-bit master key for the local KMS",
        shown="`data_dir/kms/master.key` (0600)",
        secret=True,
    )
    kms_backend: str = setting(
        "BULKHEAD_KMS",
        "local",
        help="`local` or `pkcs11` (an HSM; then `BULKHEAD_PKCS11_MODULE`, `_TOKEN`, `_PIN`)",
        choices=KMS_BACKENDS,
        parse=check.kms_backend,
    )
    pkcs11_module: str | None = setting(
        "BULKHEAD_PKCS11_MODULE", None, help="path of the PKCS#11 library (`BULKHEAD_KMS=pkcs11`)"
    )
    pkcs11_token: str | None = setting(
        "BULKHEAD_PKCS11_TOKEN", None, help="label of the PKCS#11 token"
    )
    pkcs11_pin: str | None = setting(
        "BULKHEAD_PKCS11_PIN", None, help="user PIN of the PKCS#11 token", secret=True
    )

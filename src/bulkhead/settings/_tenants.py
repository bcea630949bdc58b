"""The settings bounding what one tenant keeps in every replica's catalog (a group of
`bulkhead.settings`, the last).

Every replica's catalog holds every usable key, principal and live model version of every
tenant and reloads them all on each control-plane write of any tenant before it answers
(`store/catalog.py`): 25,000 keys of one tenant made every write take seconds.  A tenant
admin makes them one call each, so each is bounded per tenant (409 beyond, naming the
setting); the ceilings keep a reload of the largest tenant bounded.  Pending quota requests
are bounded too: the platform's list shows the newest 1,000 of all tenants, and one tenant's
flood would push the others' out of the approvers' sight.  So are fine-tuned models: each
job that succeeds makes one, a model in every catalog and an adapter its base's server
loads, and a job is refused at `create` when the models held and the jobs queued or running
already reach the bound.  Files and vector stores are counted as well: the storage quota
counts bytes, and an empty store or a one-byte file was a row (and a blob) for free; so are
the files attached to each store, each a row even for an empty file (100,000 files in each
of 1,000 stores were 10^8 rows).
Each principal's live sign-in sessions are bounded too: each sign-in was a row kept for
ever; past the bound a sign-in revokes the principal's oldest session instead of failing.
What stays on the record is bounded as well: a tenant admin could publish and retire model
versions, and a developer create and cancel fine-tuning jobs, without end.  Both are counted
(live and retired versions, finished jobs included: 409 beyond), and the maintenance loop
deletes retired versions, finished jobs, decided quota requests and ended API keys once
older than their retention (`app.history`), so a tenant at its bound makes room by waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkhead.settings._security import Security
from bulkhead.settings._table import setting


@dataclass(frozen=True, slots=True)
class Tenants(Security):
    """Per-tenant bounds on keys, principals, model versions, quota requests, fine-tuned
    models and their jobs, files and vector stores, and per-store on its files;
    per-principal bound on sign-in sessions; how long retired versions, finished jobs,
    decided requests and ended keys are kept."""

    tenant_max_keys: int = setting(
        "BULKHEAD_TENANT_MAX_KEYS",
        5_000,
        lo=1,
        hi=20_000,
        help="API keys one tenant may hold: usable, or revoked or expired within 30 days "
        "(409 beyond)",
    )
    tenant_max_principals: int = setting(
        "BULKHEAD_TENANT_MAX_PRINCIPALS",
        10_000,
        lo=1,
        hi=40_000,
        help="principals (users and service accounts) one tenant may hold (409 beyond)",
    )
    model_max_live_versions: int = setting(
        "BULKHEAD_MODEL_MAX_LIVE_VERSIONS",
        100,
        lo=1,
        hi=1_000,
        help="live (unretired) versions of one tenant model, each a deployment in every "
        "replica's catalog (409 beyond)",
    )
    tenant_max_pending_quota_requests: int = setting(
        "BULKHEAD_TENANT_MAX_PENDING_QUOTA_REQUESTS",
        16,
        lo=1,
        hi=100,
        help="quota requests one tenant may have pending at once (409 beyond)",
    )
    tenant_max_tuned_models: int = setting(
        "BULKHEAD_TENANT_MAX_TUNED_MODELS",
        50,
        lo=1,
        hi=10_000,
        help="fine-tuned models one tenant may hold, counting its queued and running "
        "fine-tuning jobs; each is a LoRA adapter its base's server loads (409 beyond)",
    )
    tenant_max_files: int = setting(
        "BULKHEAD_TENANT_MAX_FILES",
        100_000,
        lo=1,
        hi=1_000_000,
        help="files one tenant may hold, whatever their size (409 beyond; the storage "
        "quota bounds their bytes)",
    )
    tenant_max_vector_stores: int = setting(
        "BULKHEAD_TENANT_MAX_VECTOR_STORES",
        1_000,
        lo=1,
        hi=100_000,
        help="vector stores one tenant may hold, empty ones included (409 beyond)",
    )
    vector_store_max_files: int = setting(
        "BULKHEAD_VECTOR_STORE_MAX_FILES",
        10_000,
        lo=1,
        hi=100_000,
        help="files one vector store may hold, failed and empty ones included (409 beyond; "
        "a store created with more file_ids is refused whole)",
    )
    max_sessions_per_principal: int = setting(
        "BULKHEAD_MAX_SESSIONS_PER_PRINCIPAL",
        20,
        lo=1,
        hi=1_000,
        help="live sign-in sessions one principal may hold; a sign-in past it revokes the "
        "principal's oldest session (never refused)",
    )
    tenant_max_model_versions: int = setting(
        "BULKHEAD_TENANT_MAX_MODEL_VERSIONS",
        10_000,
        lo=1,
        hi=100_000,
        help="versions of its models one tenant may hold, live and retired (409 beyond; "
        "retired ones go after BULKHEAD_RETIRED_VERSION_RETENTION_DAYS)",
    )
    tenant_max_fine_tuning_jobs: int = setting(
        "BULKHEAD_TENANT_MAX_FINE_TUNING_JOBS",
        10_000,
        lo=1,
        hi=100_000,
        help="fine-tuning jobs one tenant may hold, finished ones included (409 beyond; "
        "finished ones go after BULKHEAD_FINE_TUNING_JOB_RETENTION_DAYS)",
    )
    retired_version_retention_days: int = setting(
        "BULKHEAD_RETIRED_VERSION_RETENTION_DAYS",
        90,
        lo=1,
        hi=36_500,
        help="days a retired model version stays listed; then maintenance deletes it",
    )
    fine_tuning_job_retention_days: int = setting(
        "BULKHEAD_FINE_TUNING_JOB_RETENTION_DAYS",
        180,
        lo=1,
        hi=36_500,
        help="days a finished fine-tuning job (and its events) stays listed; then maintenance "
        "deletes it, unless its fine-tuned model still exists",
    )
    quota_request_retention_days: int = setting(
        "BULKHEAD_QUOTA_REQUEST_RETENTION_DAYS",
        365,
        lo=1,
        hi=36_500,
        help="days a decided quota request stays listed; then maintenance deletes it (the "
        "audit log keeps the decision)",
    )
    ended_key_retention_days: int = setting(
        "BULKHEAD_ENDED_KEY_RETENTION_DAYS",
        400,
        lo=31,
        hi=36_500,
        help="days a tenant's revoked or expired API key stays listed; then maintenance "
        "deletes it (after 30 days it already answers as an unknown key)",
    )

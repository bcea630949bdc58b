"""How much one tenant may keep in every replica's catalog: the operator's per-tenant bounds.

The catalog holds every usable key, principal and live model version of every tenant and
reloads them all on each control-plane write (`store/catalog.py`), so each is bounded per
tenant; so are its fine-tuned models (each also an adapter its base's server loads,
`store.artifacts.check_tuned_room`), counted with the jobs that may still make one.
Pending quota requests are bounded so one tenant cannot bury the others' in the platform's
list.  Files and vector stores are counted too: the storage quota counts bytes, so empty
stores and tiny files were rows (and blobs) without end; so are the files attached to one
store (`store.vector_links`), each a row whatever the file's size.  So are each principal's live
sign-in sessions, though past that bound a sign-in revokes the oldest rather than being
refused (`store.signin.create_session`).  So is what a tenant keeps on the record: its model
versions, live and retired, and its fine-tuning jobs, finished ones included (the
maintenance loop deletes old retired and finished ones, `store.history`).  The values
come from the settings (`BULKHEAD_TENANT_MAX_*`, `BULKHEAD_MODEL_MAX_LIVE_VERSIONS`,
`BULKHEAD_MAX_SESSIONS_PER_PRINCIPAL`); `Database` hands them to every session it opens,
and the repositories count against them under the tenant's (or principal's) lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

_INFO = "bulkhead.bounds"


@dataclass(frozen=True, slots=True)
class TenantBounds:
    """The most one tenant (or one of its models) may hold; the settings' defaults."""

    keys: int = 5_000
    principals: int = 10_000
    live_versions: int = 100
    pending_quota_requests: int = 16
    tuned_models: int = 50
    files: int = 100_000
    vector_stores: int = 1_000
    vector_store_files: int = 10_000
    sessions_per_principal: int = 20
    model_versions: int = 10_000
    fine_tuning_jobs: int = 10_000

    def __post_init__(self) -> None:
        numbers = (self.keys, self.principals, self.live_versions, self.pending_quota_requests)
        held = (self.tuned_models, self.files, self.vector_stores, self.sessions_per_principal)
        kept = (self.model_versions, self.fine_tuning_jobs, self.vector_store_files)
        if min(*numbers, *held, *kept) < 1:
            raise ValueError("every tenant bound is at least 1")


def bounds_of(session: Session) -> TenantBounds:
    """The bounds of the database `session` came from (the defaults for a bare session)."""
    bounds = session.info.get(_INFO)
    return bounds if isinstance(bounds, TenantBounds) else TenantBounds()


def with_bounds(session: Session, bounds: TenantBounds) -> Session:
    """`session`, carrying `bounds` for the repositories it is handed to."""
    session.info[_INFO] = bounds
    return session

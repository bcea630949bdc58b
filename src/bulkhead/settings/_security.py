"""The settings of trust and isolation: audit, the internal CA and mTLS, shared capacity, the
worker sandbox, sign-in, reachable networks and key rotation (a group of `bulkhead.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkhead.settings import _checks as check
from bulkhead.settings import _help as h
from bulkhead.settings._operations import Operations
from bulkhead.settings._table import setting


@dataclass(frozen=True, slots=True)
class Security(Operations):
    """Audit, the CA, alerts, shared capacity, the sandbox, sign-in, networks and rotations."""

    audit_origin: str = setting(
        "BULKHEAD_AUDIT_ORIGIN",
        "bulkhead/audit",
        help="the audit log's origin line in its signed checkpoints",
        parse=check.origin,
    )
    audit_witness_url: str | None = setting(
        "BULKHEAD_AUDIT_WITNESS_URL", None, help=h.WITNESS, parse=check.http_url
    )
    trust_domain: str = setting(
        "BULKHEAD_TRUST_DOMAIN",
        "bulkhead.local",
        help="SPIFFE trust domain of the internal CA",
        parse=check.trust_domain,
    )
    # mTLS between the gateway and its local workers (with the bearer token kept).
    worker_mtls: bool = setting(
        "BULKHEAD_WORKER_MTLS", True, help="mTLS between gateway and local workers", shown="`1`"
    )
    # Lifetime of the SVIDs of the gateway and its workers; each renews at half of it.
    svid_lifetime_s: int = setting(
        "BULKHEAD_SVID_LIFETIME_S",
        3600,
        lo=4,
        hi=30 * 86_400,
        help="workload certificate lifetime (rotated at half)",
    )
    # Break-glass alerts are POSTed here as JSON (best effort); it may carry a token.
    alert_webhook_url: str | None = setting(
        "BULKHEAD_ALERT_WEBHOOK_URL",
        None,
        help="break-glass, anomaly, audit-writer and key-rotation alerts are POSTed here",
        parse=check.http_url,
        secret=True,
    )
    # Rate limits and shared capacity across replicas (Redis), or kept in this process (unset).
    redis_url: str | None = setting(
        "BULKHEAD_REDIS_URL",
        None,
        help="rate limits and shared models' capacity, shared by every replica "
        "(`redis://`, `rediss://`, `unix://`)",
        shown="none (in process)",
        parse=check.redis_url,
        secret=True,
    )
    # Calls in flight to one shared deployment, unless it sets `max_in_flight`, and
    # how long a call may wait in its tenant's queue for a slot before a 429.
    shared_capacity: int = setting(
        "BULKHEAD_SHARED_CAPACITY",
        64,
        lo=1,
        hi=100_000,
        help="calls in flight to one shared deployment, unless it sets `max_in_flight`",
    )
    queue_wait_s: float = setting(
        "BULKHEAD_QUEUE_WAIT_MS",
        10.0,
        lo=0,
        hi=600_000,
        help="how long a call may wait (ms) in its tenant's queue for a shared slot before a 429",
        shown="10000",
        parse=check.millis,
    )
    # With Redis: how long the concurrency slots and shared-capacity slots of a replica
    # outlive it (renewed every third of it while its calls run).
    slot_lease_s: int = setting(
        "BULKHEAD_SLOT_LEASE_S",
        10,
        lo=2,
        hi=3600,
        help="with Redis: seconds a dead replica's concurrency and shared-capacity slots "
        "stay taken (renewed while calls run)",
    )
    # Worker sandbox: "on" (what the host allows, the rest reported), "off" or "require";
    # the uids workers get (one each), and a memory limit for every tier (0: the tier's).
    worker_sandbox: str = setting(
        "BULKHEAD_WORKER_SANDBOX",
        "on",
        help="worker sandbox: `on` (what the host allows, the rest reported), `off`, `require`",
        choices=("on", "off", "require"),
    )
    worker_uid_base: int = setting(
        "BULKHEAD_WORKER_UID_BASE",
        910_000,
        lo=1000,
        hi=2**31 - 2**20,
        help="first uid given to workers (one each)",
    )
    worker_uid_count: int = setting(
        "BULKHEAD_WORKER_UID_COUNT", 1000, lo=1, hi=2**20, help="how many uids workers may get"
    )
    worker_memory_mb: int = setting(
        "BULKHEAD_WORKER_MEMORY_MB", 0, lo=0, hi=1 << 24, help=h.WORKER_MEMORY
    )
    # Sign-in (/auth/v1, anonymous): attempts per minute per client address and in
    # all (shared through Redis when it is set), and the threads that check passwords
    # and how many more attempts may wait for them before the rest get a 429.
    signin_client_rpm: int = setting(
        "BULKHEAD_SIGNIN_CLIENT_RPM",
        30,
        lo=1,
        hi=1_000_000,
        help="sign-in attempts a minute per client address (IPv6: per /64; the socket peer, "
        "so behind a proxy raise it and limit at the proxy); shared through Redis when "
        "`BULKHEAD_REDIS_URL` is set",
    )
    signin_rpm: int = setting(
        "BULKHEAD_SIGNIN_RPM", 600, lo=1, hi=1_000_000, help="sign-in attempts a minute in all"
    )
    signin_workers: int = setting(
        "BULKHEAD_SIGNIN_WORKERS", 2, lo=1, hi=64, help="threads checking passwords"
    )
    signin_queue: int = setting(
        "BULKHEAD_SIGNIN_QUEUE",
        16,
        lo=0,
        hi=10_000,
        help="sign-in attempts that may wait for those threads (more get 429 at once)",
    )
    # CIDRs the platform's own upstreams may reach beyond public, loopback, private and
    # CGNAT addresses (link-local, metadata…): none unless the operator names them.
    upstream_allow_cidrs: tuple[str, ...] = setting(
        "BULKHEAD_UPSTREAM_ALLOW_CIDRS",
        (),
        help="comma-separated CIDRs the platform's own upstreams may reach beyond public, "
        "loopback, private and CGNAT (e.g. a link-local range)",
        shown="none",
        parse=check.cidrs,
    )
    idp_allow_cidrs: tuple[str, ...] = setting(
        "BULKHEAD_IDP_ALLOW_CIDRS", (), shown="none", parse=check.cidrs, help=h.IDP_CIDRS
    )
    console_origin: str | None = setting(
        "BULKHEAD_CONSOLE_ORIGIN", None, help=h.CONSOLE_ORIGIN, parse=check.web_origin
    )
    # Scheduled rotation of the platform's own keys (days; 0 turns one off), run by the
    # maintenance loop.  A new CA version issues only `ca_activation_s` after it is made:
    # the time every peer has to take the new trust bundle.  A CA certificate lasts 5 years;
    # a version must outlast its activation, its period, the next version's activation and
    # its last leaf (30 days), so the period is at most 1,700 days.
    audit_key_rotation_days: int = setting(
        "BULKHEAD_AUDIT_KEY_ROTATION_DAYS",
        90,
        lo=0,
        hi=3650,
        help="rotation of the audit log's signing key; 0 = off",
    )
    platform_kek_rotation_days: int = setting(
        "BULKHEAD_PLATFORM_KEK_ROTATION_DAYS",
        90,
        lo=0,
        hi=3650,
        help="rotation of the `_platform` KEK; 0 = off",
    )
    ca_rotation_days: int = setting(
        "BULKHEAD_CA_ROTATION_DAYS",
        365,
        lo=0,
        hi=1700,
        help="rotation of the internal CA (at most 1,700 days, so a version outlives its "
        "last leaf within its 5-year certificate); 0 = off",
    )
    ca_activation_s: int = setting(
        "BULKHEAD_CA_ACTIVATION_S",
        86_400,
        lo=5,
        hi=30 * 86_400,
        help="how long a new CA is only trusted before it issues (every peer takes the new "
        "bundle meanwhile; at most 30 days)",
    )
    cache_salt_rotation_days: int = setting(
        "BULKHEAD_CACHE_SALT_ROTATION_DAYS",
        90,
        lo=0,
        hi=3650,
        help="rotation of the secret behind tenants' vLLM cache salts; 0 = off",
    )

"""Authorization decisions: latency of `CedarAuthorizer.authorize`, cached and uncached.

    .venv/bin/python bench/authz_bench.py [--n 20000] [--gateway-cpu-ms 0.400]

Prints p50/p99 in µs for a cached decision (the same request again) and an
uncached one (every call a new client address, so Cedar evaluates it), with
the platform policies, a tenant network policy and two tenant forbids in
force.  A model call takes two decisions (the action, then the model); their
share of the gateway's CPU per request is given against `--gateway-cpu-ms`
(the figure `bench/run.py` measured; default: c=16 from results/latest.md).
Target: cached p50 <= 20 µs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from bulkhead.domain import (
    Endpoint,
    Model,
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.policy import CedarAuthorizer, Environment, model_resource

TENANT_POLICIES = """
@id("no-embeddings")
forbid (principal in Role::"end_user", action == Action::"v1:embeddings", resource);
@id("office-only")
forbid (principal, action, resource) unless { ip(context.ip).isInRange(ip("10.0.0.0/8")) };
"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def timed(work: Callable[[int], None], n: int) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter_ns()
        work(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--gateway-cpu-ms", type=float, default=0.400)
    args = parser.parse_args()

    tenant = Tenant(
        id="ten_1",
        name="acme",
        tier=Tier.SHARED,
        status=TenantStatus.ACTIVE,
        attributes={"allowed_networks": ["10.0.0.0/8"], "regions": ["eu-west"]},
    )
    principal = Principal(
        "prn_1", "ten_1", "someone", PrincipalKind.USER, frozenset({Role.END_USER})
    )
    ctx = TenantContext(tenant=tenant, principal=principal, role=Role.END_USER, credential_id="k")
    model = Model("mdl_1", "m", None, frozenset({Endpoint.CHAT}), attributes={"region": "eu-west"})
    resource = model_resource(model)
    policies: Mapping[str, str] = {"ten_1": TENANT_POLICIES}
    now = datetime(2025, 1, 6, 12, tzinfo=UTC)
    authorizer = CedarAuthorizer(lambda: (1, policies), cache_size=1 << 20, now=lambda: now)

    env = Environment(client_ip="10.1.2.3")
    authorizer.authorize(ctx, "v1:chat", resource=resource, env=env)
    cached = timed(
        lambda i: authorizer.authorize(ctx, "v1:chat", resource=resource, env=env), args.n
    )

    def uncached(i: int) -> None:
        fresh = Environment(client_ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        authorizer.authorize(ctx, "v1:chat", resource=resource, env=fresh)

    fresh = timed(uncached, args.n)
    (c50, c99), (u50, u99) = percentiles(cached), percentiles(fresh)
    print(f"decisions: {args.n} each, tenant set = platform + networks + 2 tenant forbids")
    print(
        f"cached   p50 {c50:7.2f} µs  p99 {c99:7.2f} µs  (target p50 <= 20 µs: "
        f"{'yes' if c50 <= 20 else 'NO'})"
    )
    print(f"uncached p50 {u50:7.2f} µs  p99 {u99:7.2f} µs")
    budget = args.gateway_cpu_ms * 1000
    print(
        f"share of {args.gateway_cpu_ms:.3f} ms gateway CPU per model call (2 decisions): "
        f"cached {2 * c50 / budget:.1%}, uncached {2 * u50 / budget:.1%}"
    )


if __name__ == "__main__":
    main()

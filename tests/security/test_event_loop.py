"""No end-user request stalls the event loop for every tenant (issue 12 item 6).

A real gateway takes hostile requests of every kind in `tests/support/hostile.py`
at once (multipart floods, huge prompts for the token counter and the guard,
huge refused bodies, deeply nested JSON, many small messages, ...) while
`/healthz` is sampled; its p99 must stay within 50 ms, and no hostile
request may get a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gateway import GatewayThread
from tests.support.hostile import KINDS, LoopReport, Target, hold_healthz, upstream_process

P99_MS = 50.0
# The machine is shared: a run that misses the bound is repeated (up to this many in all),
# and every run's figures are reported.  A real stall misses it every time.
ATTEMPTS = 3


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with upstream_process() as upstream:
        gw = GatewayThread(tmp_path_factory.mktemp("loop") / "data", None).start()
        try:
            yield provision(gw, upstream)
        finally:
            gw.stop()


def provision(gw: GatewayThread, upstream: str) -> Target:
    """Tenant `loop` without rate limits (so its calls reach the guard) and `loop-limited`
    with its tier's defaults (so a huge prompt is refused), sharing one model."""
    from bulkhead.store import repo

    gw.tenant("loop")
    gw.tenant("loop-limited")
    gw.model("loop-m", upstream, grant=("loop", "loop-limited"), upstream_model="fake",
             endpoints=["chat", "completions", "embeddings"])  # fmt: skip
    unlimited = {"requests_per_minute": None, "tokens_per_minute": None, "concurrency": None}
    with gw.app.db.platform_transaction() as session:
        repo.set_tenant_limits(session, "loop", unlimited)
    gw.app.catalog.reload()
    keys = {"user": gw.key("loop"), "limited": gw.key("loop-limited")}
    return Target(url=gw.url, keys=keys, model="loop-m", tenant="loop")


def test_healthz_holds_while_every_hostile_kind_runs(target: Target) -> None:
    reports: list[LoopReport] = []
    for _ in range(ATTEMPTS):
        reports.append(hold_healthz(target, list(KINDS), seconds=6.0))
        print(reports[-1])
        assert not reports[-1].server_errors(), reports[-1]
        if reports[-1].p99_ms <= P99_MS:
            break
    assert reports[-1].p99_ms <= P99_MS, "\n".join(map(str, reports))

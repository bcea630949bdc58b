"""Audit export cost: one tenant's bundle (with a proof per own entry) and single proofs.

    python bench/audit_export_bench.py [--own 4005] [--others 4005] [--rounds 3]

Issue 12, item 10: a tenant's export computed one O(n) inclusion proof per
own entry (4,005 own entries took 7.4 s).  The log here is SQLite in a
temporary directory: `--own` entries of one tenant interleaved with
`--others` of other tenants, all under one checkpoint.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bulkhead.audit.checkpoint import Signer  # noqa: E402
from bulkhead.audit.events import AuditEvent  # noqa: E402
from bulkhead.audit.export import build_bundle, prove  # noqa: E402
from bulkhead.audit.keys import register  # noqa: E402
from bulkhead.audit.log import append_batch  # noqa: E402
from bulkhead.audit.sequencer import Sequencer  # noqa: E402
from bulkhead.store import Database, upgrade  # noqa: E402

ORIGIN = "bulkhead/audit"
TENANT = "ten_" + "a" * 20


def build_log(db: Database, own: int, others: int) -> None:
    total = own + others
    # The tenant's entries are spread evenly through the log.
    mine = {i * total // own for i in range(own)}
    tenants = [TENANT if i in mine else None for i in range(total)]
    for start in range(0, total, 4096):
        append_batch(
            db,
            [
                AuditEvent(
                    action="v1:chat",
                    outcome="success",
                    status=200,
                    tenant_id=tenant or f"ten_{i % 7:020x}",
                    model="gpt",
                    prompt_tokens=12,
                )
                for i, tenant in enumerate(tenants[start : start + 4096], start)
            ],
        )
    signer = Signer.generate(ORIGIN)
    register(db, signer.verifier)
    Sequencer(db, signer, ORIGIN).checkpoint()


def timed(call: object, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def warm_proof(db: Database, event_id: str, rounds: int) -> float | None:
    """A proof with the cache the gateway keeps (None where the code has none)."""
    if "cache" not in inspect.signature(prove).parameters:
        return None
    from bulkhead.audit.export import ProofCache

    cache = ProofCache(db)
    prove(db, event_id, TENANT, cache)
    return timed(lambda: prove(db, event_id, TENANT, cache), rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--own", type=int, default=4005)
    parser.add_argument("--others", type=int, default=4005)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/audit.db")
        upgrade(db)
        build_log(db, args.own, args.others)
        bundle = build_bundle(db, ORIGIN, TENANT)
        own = [json.loads(e["body"]) for e in bundle["entries"] if "body" in e]
        assert len(own) == args.own and len(bundle["proofs"]) == args.own, len(own)
        export_s = timed(lambda: build_bundle(db, ORIGIN, TENANT), args.rounds)
        middle = own[len(own) // 2]["event_id"]
        proof_s = timed(lambda: prove(db, middle, TENANT), max(args.rounds, 5))
        warm_s = warm_proof(db, middle, max(args.rounds, 5))
        db.dispose()
    total = args.own + args.others
    print(f"log of {total:,} entries, {args.own:,} of them the tenant's")
    print(f"tenant bundle with {args.own:,} proofs (s): {export_s:.3f}")
    print(f"one proof, nothing cached (ms): {proof_s * 1000:.1f}")
    if warm_s is not None:
        print(f"one proof, the gateway's ProofCache warm (ms): {warm_s * 1000:.1f}")


if __name__ == "__main__":
    main()

"""Audit log benchmark: durable appends/s, checkpoint latency, verification speed, request cost.

    python bench/audit_bench.py [--events 200000] [--verify 1000000] [--writer-only]

`--writer-only` also counts the WAL frames (pages) an SQLite commit writes
and fsyncs: a figure the machine's load does not move, for before/after.

Targets (issue 3): >= 20,000 durable events/s on this 2-core machine,
verification of 1,000,000 events in <= 10 s, <= 0.1 ms added p50 per request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.postgres import (  # noqa: E402
    app_url,
    cluster,
    create_database,
    sqlalchemy_url,
)

from bulkhead.audit.append import Appender  # noqa: E402
from bulkhead.audit.bundle import FORMAT, verify_bundle  # noqa: E402
from bulkhead.audit.checkpoint import Signer, sign_checkpoint  # noqa: E402
from bulkhead.audit.events import AuditEvent  # noqa: E402
from bulkhead.audit.hashing import leaf_hash  # noqa: E402
from bulkhead.audit.log import GENESIS, AuditLog, encode  # noqa: E402
from bulkhead.audit.sequencer import Sequencer  # noqa: E402
from bulkhead.audit.tree import CompactRange  # noqa: E402
from bulkhead.domain import Tier  # noqa: E402
from bulkhead.gateway.audit import event_of  # noqa: E402
from bulkhead.store import Database, repo, upgrade, usage  # noqa: E402
from bulkhead.web.scope import Exchange  # noqa: E402

ORIGIN = "bulkhead/audit"


def sample_event(i: int) -> AuditEvent:
    return AuditEvent(
        action="v1:chat",
        outcome="success",
        status=200,
        request_id=f"req_{i:024x}",
        tenant_id=f"ten_{i % 7:020x}",
        principal_id=f"prn_{i % 50:020x}",
        credential_id="abcdefghijkl",
        resource="gpt",
        model="gpt",
        prompt_tokens=12,
        completion_tokens=34,
        latency_ms=1.234,
        client="127.0.0.1",
    )


def durable_rate(url: str, count: int, admin: str | None = None) -> float:
    db = Database(url)
    upgrade(db, admin)
    # Everything is emitted at once, far ahead of the writer: a gateway would refuse
    # requests at this backlog, but here the point is the writer's throughput.
    log = AuditLog(db, max_backlog=count)
    events = [sample_event(i) for i in range(count)]
    started = time.perf_counter()
    for event in events:
        log.emit(event)
    log.flush(timeout=600)
    elapsed = time.perf_counter() - started
    assert log.acknowledged == count
    log.close()
    db.dispose()
    return count / elapsed


def writer_cpu_us(url: str, admin: str | None = None, rounds: int = 500) -> tuple[float, float]:
    """The writer thread's CPU per commit as a gateway at c=1 makes them, with the usage hook.

    Each round is one commit of a call's `started` entry and the previous
    call's closing entry (what a lone client's calls share), waited for as
    `durable` would; returns (CPU us per commit, wall us per commit).
    """
    db = Database(url)
    upgrade(db, admin)
    with db.platform_transaction() as session:
        tenant = repo.create_tenant(session, "bench", Tier.SHARED).id
    log = AuditLog(db, on_batch=usage.record)
    clock = time.pthread_getcpuclockid(log._thread.ident or 0)
    calls = [sample_event(i) for i in range(2 * (rounds + 50))]
    for n, event in enumerate(calls):
        event.tenant_id = tenant
        event.outcome = "started" if n % 2 == 0 else "success"
    for n in range(0, 100, 2):  # warm-up
        log.emit(calls[n])
        log.emit(calls[n + 1])
        log.flush()
    cpu, wall = time.clock_gettime(clock), time.perf_counter()
    for n in range(100, len(calls), 2):
        log.emit(calls[n])
        log.emit(calls[n + 1])
        log.flush()
    cpu, wall = time.clock_gettime(clock) - cpu, time.perf_counter() - wall
    log.close()
    db.dispose()
    return cpu / rounds * 1e6, wall / rounds * 1e6


def wal_frames_per_commit(path: Path, warm: int = 3000, rounds: int = 300) -> float:
    """Pages an SQLite commit of a call's two entries plus usage writes to the WAL (and fsyncs).

    After `warm` commits (so the log's indexes have grown past a few pages),
    the WAL is emptied and not checkpointed again; its size after `rounds`
    more commits, in frames, over `rounds`.
    """
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    with db.platform_transaction() as session:
        tenant = repo.create_tenant(session, "bench", Tier.SHARED).id
    appender = Appender(db, on_batch=usage.record)
    calls = [sample_event(i) for i in range(2 * (warm + rounds))]
    for n, event in enumerate(calls):
        event.tenant_id = tenant
        event.outcome = "started" if n % 2 == 0 else "success"
    for n in range(0, 2 * warm, 2):
        appender.append(calls[n : n + 2])
    appender.conn.begin()
    appender.conn.commit()
    appender.conn.execute("PRAGMA wal_autocheckpoint=0")
    appender.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for n in range(2 * warm, len(calls), 2):
        appender.append(calls[n : n + 2])
    wal = Path(f"{path}-wal").read_bytes()
    appender.close()
    db.dispose()
    size, page = len(wal), int.from_bytes(wal[8:12], "big")  # the header names the page size
    return (size - _WAL_HEADER) / (_FRAME_HEADER + page) / rounds


_WAL_HEADER, _FRAME_HEADER = 32, 24  # bytes (sqlite.org/fileformat2.html#walformat)


def checkpoint_latency(
    url: str, admin: str | None = None, rounds: int = 7, batch: int = 10_000
) -> float:
    db = Database(url)
    upgrade(db, admin)
    log = AuditLog(db)
    sequencer = Sequencer(db, Signer.generate(ORIGIN), ORIGIN)
    times = []
    for r in range(rounds):
        for i in range(batch):
            log.emit(sample_event(r * batch + i))
        log.flush(timeout=600)
        started = time.perf_counter()
        assert sequencer.checkpoint() is not None
        times.append(time.perf_counter() - started)
    log.close()
    db.dispose()
    return statistics.median(times) * 1000


def big_bundle(count: int, every: int) -> dict[str, object]:
    signer = Signer.generate(ORIGIN)
    tree, prev = CompactRange(), GENESIS
    entries, notes = [], []
    for i in range(count):
        body = encode(sample_event(i), i, prev)
        prev = leaf_hash(body)
        tree.append(prev)
        entries.append({"body": body.decode()})
        if (i + 1) % every == 0 or i + 1 == count:
            notes.append(sign_checkpoint(ORIGIN, i + 1, tree.root(), signer).decode())
    return {
        "format": FORMAT,
        "origin": ORIGIN,
        "tenant": None,
        "size": count,
        "entries": entries,
        "checkpoints": notes,
        "verifiers": [signer.verifier.vkey],
        "proofs": {},
    }


def verification_time(count: int) -> float:
    bundle = big_bundle(count, every=10_000)
    from bulkhead.audit.checkpoint import Verifier

    keys = [Verifier.from_vkey(v) for v in bundle["verifiers"]]  # type: ignore[union-attr]
    started = time.perf_counter()
    verify_bundle(bundle, keys)
    return time.perf_counter() - started


def request_cost_us(rounds: int = 200_000) -> float:
    """What auditing adds to a request: building the event and queueing it."""

    class NullQueue:
        def emit(self, event: AuditEvent) -> None:
            self.last = event

    sink = NullQueue()
    import queue

    q: queue.SimpleQueue[AuditEvent] = queue.SimpleQueue()
    ex = Exchange(
        request_id="req_x",
        started=time.perf_counter(),
        client="127.0.0.1",
        action="v1:chat",
        model="m",
        status=200,
        tenant_id="ten_x",
        prompt_tokens=1,
        completion_tokens=2,
    )
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            q.put(event_of(ex, "POST", "/v1/chat/completions"))
        samples.append((time.perf_counter() - started) / rounds * 1e6)
        while not q.empty():
            q.get_nowait()
    del sink
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--verify", type=int, default=1_000_000)
    parser.add_argument("--writer-only", action="store_true", help="only the writer CPU figures")
    args = parser.parse_args()
    if args.writer_only:
        writer_figures()
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{tmp}/audit.db"
        rows.append(
            ("durable appends/s, SQLite", f"{durable_rate(sqlite, args.events):,.0f}", ">= 20,000")
        )
        cpu, wall = writer_cpu_us(f"sqlite:///{tmp}/writer.db")
        rows.append(("writer CPU per 2-event commit + usage, SQLite (us)", f"{cpu:.0f}", "-"))
        rows.append(("  wall per commit, SQLite (us)", f"{wall:.0f}", "-"))
        rows.append(
            (
                "checkpoint latency p50, SQLite (ms)",
                f"{checkpoint_latency(f'sqlite:///{tmp}/cp.db'):.2f}",
                "-",
            )
        )
    with cluster(fsync=True) as admin:
        # The gateway's own plain role (row-level security binds it); migrations as the owner.
        owner = sqlalchemy_url(create_database(admin, "bench_audit"))
        rate = durable_rate(sqlalchemy_url(app_url(owner)), args.events, owner)
        rows.append(("durable appends/s, PostgreSQL", f"{rate:,.0f}", ">= 20,000"))
        owner = sqlalchemy_url(create_database(admin, "bench_writer"))
        cpu, wall = writer_cpu_us(sqlalchemy_url(app_url(owner)), owner)
        rows.append(("writer CPU per 2-event commit + usage, PostgreSQL (us)", f"{cpu:.0f}", "-"))
        rows.append(("  wall per commit, PostgreSQL (us)", f"{wall:.0f}", "-"))
        owner = sqlalchemy_url(create_database(admin, "bench_cp"))
        latency = checkpoint_latency(sqlalchemy_url(app_url(owner)), owner)
        rows.append(("checkpoint latency p50, PostgreSQL (ms)", f"{latency:.2f}", "-"))
    rows.append(
        (f"verify {args.verify:,} events (s)", f"{verification_time(args.verify):.2f}", "<= 10")
    )
    rows.append(
        ("added per request: build + queue event (us)", f"{request_cost_us():.1f}", "<= 100")
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>12}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>12}  {target}")


def writer_figures() -> None:
    """The writer's CPU per commit alone, on both backends (quick; for before/after)."""
    with tempfile.TemporaryDirectory() as tmp:
        frames = wal_frames_per_commit(Path(tmp) / "frames.db")
        print(f"WAL frames per 2-event commit + usage, SQLite: {frames:.2f}")
        cpu, wall = writer_cpu_us(f"sqlite:///{tmp}/writer.db")
        print(
            f"writer per 2-event commit + usage, SQLite:     {cpu:6.0f} us CPU  {wall:6.0f} us wall"
        )
    with cluster(fsync=True) as admin:
        owner = sqlalchemy_url(create_database(admin, "bench_writer"))
        cpu, wall = writer_cpu_us(sqlalchemy_url(app_url(owner)), owner)
        print(
            f"writer per 2-event commit + usage, PostgreSQL: {cpu:6.0f} us CPU  {wall:6.0f} us wall"
        )


if __name__ == "__main__":
    main()

"""Durable usage: each tenant's model calls per UTC hour, model, API key and code.

The audit writer hands every batch it commits to `record`, inside the same
transaction (`AuditLog(on_batch=...)`): the batch's model calls are summed in
memory and added to `usage_hours` with one upsert per row they touch (one
executemany, the check that the tenant still exists in the same statement).  Usage
is therefore exactly what the audit log holds, with no commit of its own per
request: durable, the same whichever replica reads it, and never counted
twice (a batch that fails is retried whole, its usage with it).  Writers on
one database are serialised by the audit sequencer's lock, so concurrent
upserts cannot deadlock.

A *model call* is an event of a `/v1` endpoint with a tenant and a resolved
model (chat, completions, embeddings), whatever its outcome: a success, an
error (status 400 or more without a refusal) or a refusal (`decision` deny),
the last two counted under their code.  Only the record that ends a call
counts (outcome "success" or "failure"): an entry written before a call is
forwarded (outcome "started") is not a second call.  Every value comes from an event and
is checked as untrusted: what no column can hold is counted under a neutral
name ("other") or left out, never allowed to fail the audit batch.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import ColumnElement, bindparam, cast, delete, exists, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from bulkhead.store.direct import DirectConnection, compile_sql
from bulkhead.store.schema import TenantRow, UsageHourRow
from bulkhead.store.schema.records import LATENCY_BOUNDS_MS

HOUR_S = 3600
DAY_S = 86400
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TENANT_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_MODEL_MAX = 128
_CREDENTIAL_KINDS = {"session": "session", "jwt": "oidc"}  # `kind:id` -> the key column
_SAFE_INTEGER = 2**53
_ENDS = ("success", "failure")  # the outcomes of the record that ends a call
_LATEST_TIME = 2.0**40  # seconds: an event "time" beyond this is not a time
LATENCY_COLUMNS = (*(f"lat_{b}" for b in LATENCY_BOUNDS_MS), "lat_inf")
COUNTS = (
    "requests",
    "successes",
    "errors",
    "refusals",
    "prompt_tokens",
    "completion_tokens",
    *LATENCY_COLUMNS,
)
"""The columns an upsert adds to (besides the latency sum, and the maximum it raises)."""
KEY = ("tenant_id", "hour", "model", "key_id", "reason")
GROUPS = ("model", "key", "reason", "hour", "day")
"""What a summary may be grouped by; `hour` and `day` are the bucket's start."""


class Call(Protocol):
    """The facts of one audit event that usage reads (`AuditEvent` has them all)."""

    @property
    def action(self) -> object: ...
    @property
    def outcome(self) -> object: ...
    @property
    def status(self) -> object: ...
    @property
    def tenant_id(self) -> object: ...
    @property
    def credential_id(self) -> object: ...
    @property
    def decision(self) -> object: ...
    @property
    def reason(self) -> object: ...
    @property
    def model(self) -> object: ...
    @property
    def prompt_tokens(self) -> object: ...
    @property
    def completion_tokens(self) -> object: ...
    @property
    def latency_ms(self) -> object: ...
    @property
    def time(self) -> object: ...


@dataclass(slots=True)
class Tally:
    """What one row of `usage_hours` gains from a batch."""

    requests: int = 0
    successes: int = 0
    errors: int = 0
    refusals: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0
    latency: list[int] = field(default_factory=lambda: [0] * len(LATENCY_COLUMNS))

    def add(self, call: Call, outcome: str) -> None:
        self.requests += 1
        if outcome == "refusal":
            self.refusals += 1
        elif outcome == "error":
            self.errors += 1
        else:
            self.successes += 1
        self.prompt_tokens += _count(call.prompt_tokens)
        self.completion_tokens += _count(call.completion_tokens)
        latency = _latency(call.latency_ms)
        self.latency_ms_sum += latency
        self.latency_ms_max = max(self.latency_ms_max, latency)
        self.latency[_bucket(latency)] += 1

    def row(self, key: tuple[str, int, str, str, str]) -> dict[str, Any]:
        row: dict[str, Any] = dict(zip(KEY, key, strict=True))
        row.update(
            requests=self.requests,
            successes=self.successes,
            errors=self.errors,
            refusals=self.refusals,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            latency_ms_sum=self.latency_ms_sum,
            latency_ms_max=self.latency_ms_max,
        )
        row.update(zip(LATENCY_COLUMNS, self.latency, strict=True))
        return row


def tally(calls: Iterable[Call]) -> dict[tuple[str, int, str, str, str], Tally]:
    """The batch's model calls, summed per (tenant, hour, model, key, code)."""
    found: dict[tuple[str, int, str, str, str], Tally] = {}
    for call in calls:
        where = _where(call)
        if where is None:
            continue
        outcome, reason = _outcome(call)
        key = (*where, reason)
        entry = found.get(key)
        if entry is None:
            entry = found[key] = Tally()
        entry.add(call, outcome)
    return found


def record(conn: DirectConnection, calls: Sequence[Call]) -> None:
    """Add the batch's model calls to `usage_hours` (the audit writer's `on_batch` hook).

    Runs in the audit batch's own (platform) transaction, as one statement
    per row it touches (one executemany).  A call of a tenant that no longer
    exists is left out: its rows went with it (the statement inserts only
    while the tenant's row is there).
    """
    found = tally(calls)
    if found:
        conn.executemany(_upsert_sql(conn.dialect), [found[k].row(k) for k in sorted(found)])


def purge(session: Session, tenant_ids: Iterable[str], before: float) -> int:
    """Delete the tenants' hours that started before `before`; return how many rows went.

    One statement per tenant, on the primary key's (tenant, hour) prefix.
    """
    cutoff = int(before // HOUR_S) * HOUR_S
    statement = delete(UsageHourRow).where(
        UsageHourRow.tenant_id == bindparam("tenant"), UsageHourRow.hour < cutoff
    )
    connection = session.connection()
    return sum(
        connection.execute(statement, {"tenant": tenant}).rowcount or 0 for tenant in tenant_ids
    )


@functools.cache
def _upsert_sql(dialect: str) -> str:
    return compile_sql(_upsert(dialect), dialect)


def _upsert(dialect: str) -> Any:
    """Add one row's counts, if its tenant still exists: `INSERT … SELECT … WHERE EXISTS`.

    The check and the upsert are one statement, so a batch costs one
    executemany; every value is cast to its column's type, so PostgreSQL
    takes the parameters of the SELECT as they are meant.
    """
    insert: Any = sqlite.insert
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql  # on PostgreSQL alone (store/direct.py)

        insert = postgresql.insert
    table = UsageHourRow.metadata.tables[UsageHourRow.__tablename__]
    names = [column.name for column in table.columns]
    values = select(*(cast(bindparam(n), table.c[n].type) for n in names)).where(
        exists().where(TenantRow.id == bindparam("tenant_id"))
    )
    statement = insert(table).from_select(names, values)
    new = statement.excluded
    greatest = func.greatest if dialect == "postgresql" else func.max
    old = table.c
    changes: dict[str, Any] = {c: old[c] + new[c] for c in COUNTS}
    changes["latency_ms_sum"] = old.latency_ms_sum + new.latency_ms_sum
    changes["latency_ms_max"] = greatest(old.latency_ms_max, new.latency_ms_max)
    return statement.on_conflict_do_update(index_elements=list(KEY), set_=changes)


def _where(call: Call) -> tuple[str, int, str, str] | None:
    """(tenant, hour, model, key) of a model call; None for any other event."""
    action, tenant, model = call.action, call.tenant_id, call.model
    if not (isinstance(action, str) and action.startswith("v1:")):
        return None
    if call.outcome not in _ENDS:
        return None
    if not (isinstance(tenant, str) and _TENANT_ID.fullmatch(tenant)):
        return None
    if not (isinstance(model, str) and 0 < len(model) <= _MODEL_MAX and "\x00" not in model):
        return None
    return tenant, _hour(call.time), model, _key_id(call.credential_id)


def _outcome(call: Call) -> tuple[str, str]:
    """("success" | "error" | "refusal", the code a refusal or an error is counted under)."""
    status = call.status if isinstance(call.status, int) else 0
    if call.decision == "deny":
        return "refusal", _code(call.reason) or "denied"
    if 0 < status < 400:
        return "success", ""
    return "error", _code(call.reason) or f"status_{status}"


def _code(reason: object) -> str | None:
    """A reason's code: "rate_limited:tenant" -> "rate_limited"; labels after "," dropped."""
    if not isinstance(reason, str):
        return None
    code = reason.partition(":")[0].partition(",")[0]
    return code if _ID.fullmatch(code) else "other"


def _key_id(credential: object) -> str:
    if not isinstance(credential, str):
        return ""
    kind, colon, _ = credential.partition(":")
    if colon:
        return _CREDENTIAL_KINDS.get(kind, "other")
    return credential if _ID.fullmatch(credential) else "other"


def _hour(stamp: object) -> int:
    ok = isinstance(stamp, int | float) and not isinstance(stamp, bool)
    value = float(stamp) if ok and isinstance(stamp, int | float) else math.nan
    if not (math.isfinite(value) and 0 <= value < _LATEST_TIME):
        value = time.time()
    return int(value // HOUR_S) * HOUR_S


def _count(value: object) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _SAFE_INTEGER
    return value if ok and isinstance(value, int) else 0


def _latency(value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    number = float(value) if ok and isinstance(value, int | float) else 0.0
    return number if math.isfinite(number) and 0 <= number < 1e12 else 0.0


def _bucket(latency: float) -> int:
    for index, bound in enumerate(LATENCY_BOUNDS_MS):
        if latency <= bound:
            return index
    return len(LATENCY_BOUNDS_MS)


# Reading -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One group of a summary: the group's values (those asked for) and its totals."""

    group: dict[str, str | int]
    requests: int
    successes: int
    errors: int
    refusals: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms_sum: float
    latency_ms_max: float
    latency: dict[str, int]


def _group_column(name: str) -> ColumnElement[Any] | InstrumentedAttribute[Any]:
    columns: dict[str, ColumnElement[Any] | InstrumentedAttribute[Any]] = {
        "model": UsageHourRow.model,
        "key": UsageHourRow.key_id,
        "reason": UsageHourRow.reason,
        "hour": UsageHourRow.hour,
        "day": UsageHourRow.hour - UsageHourRow.hour % DAY_S,
    }
    return columns[name]


def summary(
    session: Session,
    tenant_id: str,
    *,
    since: int = 0,
    until: int | None = None,
    group_by: Sequence[str] = ("model",),
    limit: int = 1000,
) -> list[Line]:
    """The tenant's usage in the hours that overlap [since, until), summed per group.

    At most `limit` + 1 lines come back, so a caller can tell that there were
    more than it will show.  The tenant id is required: there is no query
    across tenants (and row-level security would refuse one on PostgreSQL).
    """
    if not tenant_id:
        raise ValueError("a usage summary needs a tenant id")
    groups = [_group_column(g).label(g) for g in group_by]
    sums = [func.sum(getattr(UsageHourRow, c)).label(c) for c in (*COUNTS, "latency_ms_sum")]
    query = select(*groups, *sums, func.max(UsageHourRow.latency_ms_max).label("latency_ms_max"))
    query = query.where(
        UsageHourRow.tenant_id == tenant_id, UsageHourRow.hour >= since - since % HOUR_S
    )
    if until is not None:
        query = query.where(UsageHourRow.hour < until)
    if groups:
        query = query.group_by(*groups).order_by(*groups)
    lines = []
    for row in session.execute(query.limit(limit + 1)).mappings():
        if row["requests"] is None:
            continue  # no rows at all: SUM over nothing
        bounds = [str(b) for b in LATENCY_BOUNDS_MS] + ["+Inf"]
        lines.append(
            Line(
                group={g: row[g] for g in group_by},
                latency={b: int(row[c]) for b, c in zip(bounds, LATENCY_COLUMNS, strict=True)},
                latency_ms_sum=float(row["latency_ms_sum"]),
                latency_ms_max=float(row["latency_ms_max"]),
                **{c: int(row[c]) for c in COUNTS[:6]},
            )
        )
    return lines

"""A tenant's usage as both surfaces show it: durable, read from `store.usage`.

`since` and `until` (ISO 8601, or seconds since the epoch, UTC) pick the
hours that overlap [since, until); `group_by` is a comma-separated list of
`model`, `key`, `reason` and one of `hour` or `day` (default: `model`, the
original shape of `/tenant/v1/usage`); `limit` bounds the groups returned,
and a query with more groups is refused (400) rather than cut short.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from bulkhead.admin import schemas as s
from bulkhead.admin.router import Call
from bulkhead.errors import InvalidRequest
from bulkhead.store import usage

_LATEST = 2**37  # seconds since the epoch: past year 6000
_MAX_GROUPS = 10_000


def _instant(call: Call, name: str) -> int | None:
    raw = call.query.get(name)
    if raw is None:
        return None
    value: int | None
    try:
        value = int(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            value = None
        else:
            aware = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
            value = int(aware.timestamp())
    if value is None or not 0 <= value <= _LATEST:
        raise InvalidRequest(
            f"'{name}' must be an ISO 8601 time or seconds since the epoch (UTC).", param=name
        )
    return value


def _groups(call: Call) -> tuple[str, ...]:
    raw = call.query.get("group_by", "model")
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    unknown = [n for n in names if n not in usage.GROUPS]
    if unknown or len(set(names)) != len(names) or {"hour", "day"} <= set(names):
        raise InvalidRequest(
            "'group_by' takes a comma-separated list of model, key, reason and one of "
            "hour or day, each once.",
            param="group_by",
        )
    return names


def _line(line: usage.Line) -> s.UsageOut:
    group = line.group
    start = group.get("hour", group.get("day"))
    return s.UsageOut(
        model=_text(group.get("model")),
        key=_text(group.get("key")),
        reason=_text(group.get("reason")),
        start=datetime.fromtimestamp(start, UTC) if isinstance(start, int) else None,
        requests=line.requests,
        successes=line.successes,
        errors=line.errors,
        refusals=line.refusals,
        prompt_tokens=line.prompt_tokens,
        completion_tokens=line.completion_tokens,
        latency_ms_avg=round(line.latency_ms_sum / line.requests, 3) if line.requests else 0.0,
        latency_ms_max=line.latency_ms_max,
        latency_ms_buckets=line.latency,
    )


def _text(value: str | int | None) -> str | None:
    return None if value is None else str(value)


async def usage_of(call: Call, tenant_id: str, *, platform: bool) -> list[s.UsageOut]:
    """`tenant_id`'s usage as the call's query asks for it, in a tenant or platform read."""
    since, until = _instant(call, "since"), _instant(call, "until")
    if since is not None and until is not None and until <= since:
        raise InvalidRequest("'until' must be after 'since'.", param="until")
    groups = _groups(call)
    limit = call.int_query("limit", 1000, 1, _MAX_GROUPS)
    control = call.services.control

    def read(db: Session) -> list[usage.Line]:
        return usage.summary(
            db, tenant_id, since=since or 0, until=until, group_by=groups, limit=limit
        )

    lines = await (control.read(read) if platform else control.tenant_read(tenant_id, read))
    if len(lines) > limit:
        raise InvalidRequest(
            f"More than {limit} groups: narrow 'since'/'until', group by less, or raise 'limit'.",
            param="limit",
        )
    return [_line(line) for line in lines]

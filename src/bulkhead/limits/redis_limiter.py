"""The shared limiter: the sliding logs of `limiter` kept in Redis, one Lua script per call.

Each scope ``S`` of bucket ``B`` lives in Redis keys with the hash tag ``{B}``,
so all scopes of one tenant sit in one cluster slot and one script may touch
them all:

* ``bulkhead:lim:{B}:S:log``  sorted set, reservation id -> admission time
* ``bulkhead:lim:{B}:S:tok``  hash, reservation id -> tokens
* ``bulkhead:lim:{B}:S:sum``  string, the sum of ``tok``
* ``bulkhead:lim:{B}:S:run``  sorted set, reservation id -> lease end (calls in flight)
* ``bulkhead:lim:{B}:S:d:<YYYYMMDD>`` and ``…:m:<YYYYMM>``  token budgets per UTC period

`reserve` expires old entries, checks every limit of every scope and records
the call in one script, so one round trip (EVALSHA) admits or denies, and
Redis runs scripts one at a time: with any number of replicas the limits are
exact.  Window time is Redis's own clock (``TIME``) unless the caller passes
`now`, so replicas with skewed clocks still share one window; budget periods
are named by the caller's wall clock.

Calls in flight hold their concurrency slot under a lease (``run``): this
process renews the leases of its live reservations every third of a lease
(one pipelined round trip, from a thread that runs only while it has some),
so a call may run for as long as it needs, while a replica that dies frees its
slots within one lease (`BULKHEAD_SLOT_LEASE_S`, 10 s by default).

Any Redis error (connection refused, timeout, script error) raises
`LimiterUnavailable`: the gateway fails closed rather than admit unchecked.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from bulkhead.limits.limiter import (
    CONCURRENCY_RETRY_S,
    LEASE_S,
    LIMIT_NAMES,
    WINDOW_S,
    LimiterUnavailable,
    LimitExceeded,
    Limits,
    Periods,
    Reservation,
    Usage,
    budget_retry,
    check_request,
)

log = logging.getLogger(__name__)

_PREFIX = "bulkhead:lim:"
_KEYS_PER_SCOPE = 6
_DAY_TTL_MS = 2 * 86400 * 1000
_MONTH_TTL_MS = 32 * 86400 * 1000

# KEYS: 6 per scope (log, tok, sum, run, day, month).
# ARGV: id, tokens, now ('' = TIME), window, lease, then 5 limits per scope (-1 = unlimited).
# Returns {'ok', now, count1, sum1, oldest1, ...} or {limit, scope index (1-based), retry}.
# Numbers travel as strings: Lua numbers returned to Redis are truncated to integers.
_RESERVE = (
    """
local rid, tokens = ARGV[1], tonumber(ARGV[2])
local window, lease = tonumber(ARGV[4]), tonumber(ARGV[5])
local now
if ARGV[3] ~= '' then now = tonumber(ARGV[3]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local n = #KEYS / 6
local function k(i, j) return KEYS[(i - 1) * 6 + j] end
local function lim(i, j) return tonumber(ARGV[5 + (i - 1) * 5 + j]) end
for i = 1, n do
  local log, tok, sum = k(i, 1), k(i, 2), k(i, 3)
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
  for _, id in ipairs(old) do
    redis.call('DECRBY', sum, tonumber(redis.call('HGET', tok, id) or '0'))
    redis.call('HDEL', tok, id)
  end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window) end
  redis.call('ZREMRANGEBYSCORE', k(i, 4), '-inf', now)
end
for i = 1, n do
  local log, tok = k(i, 1), k(i, 2)
  local rpm, tpm, conc, tpd, tpmo = lim(i, 1), lim(i, 2), lim(i, 3), lim(i, 4), lim(i, 5)
  if conc >= 0 and redis.call('ZCARD', k(i, 4)) + 1 > conc then
    return {'concurrency', tostring(i), '-1'}
  end
  local count = redis.call('ZCARD', log)
  if rpm >= 0 and count + 1 > rpm then
    local e = redis.call('ZRANGE', log, count - rpm, count - rpm, 'WITHSCORES')
    return {'rpm', tostring(i), tostring(tonumber(e[2]) + window - now)}
  end
  local used = tonumber(redis.call('GET', k(i, 3)) or '0')
  if tpm >= 0 and used + tokens > tpm then
    if tokens > tpm then return {'tpm', tostring(i), tostring(window)} end
    local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
    for e = 1, #entries, 2 do
      used = used - tonumber(redis.call('HGET', tok, entries[e]) or '0')
      if used + tokens <= tpm then
        return {'tpm', tostring(i), tostring(tonumber(entries[e + 1]) + window - now)}
      end
    end
    return {'tpm', tostring(i), tostring(window)}
  end
  if tpd >= 0 and tonumber(redis.call('GET', k(i, 5)) or '0') + tokens > tpd then
    return {'tokens_per_day', tostring(i), '-1'}
  end
  if tpmo >= 0 and tonumber(redis.call('GET', k(i, 6)) or '0') + tokens > tpmo then
    return {'tokens_per_month', tostring(i), '-1'}
  end
end
local out = {'ok', tostring(now)}
local ttl = math.ceil((window + lease) * 1000)
for i = 1, n do
  redis.call('ZADD', k(i, 1), now, rid)
  redis.call('HSET', k(i, 2), rid, tokens)
  local total = redis.call('INCRBY', k(i, 3), tokens)
  redis.call('ZADD', k(i, 4), now + lease, rid)
  for j = 1, 4 do redis.call('PEXPIRE', k(i, j), ttl) end
  redis.call('INCRBY', k(i, 5), tokens)
  redis.call('PEXPIRE', k(i, 5), """
    + str(_DAY_TTL_MS)
    + """)
  redis.call('INCRBY', k(i, 6), tokens)
  redis.call('PEXPIRE', k(i, 6), """
    + str(_MONTH_TTL_MS)
    + """)
  local first = redis.call('ZRANGE', k(i, 1), 0, 0, 'WITHSCORES')
  table.insert(out, tostring(redis.call('ZCARD', k(i, 1))))
  table.insert(out, tostring(total))
  table.insert(out, first[2])
end
return out
"""
)

# ARGV: id, actual tokens (>= 0), '1' to refund the request too (release).
_FINISH = """
local rid, actual, refund = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
for i = 0, #KEYS / 6 - 1 do
  local log, tok, sum, run = KEYS[i * 6 + 1], KEYS[i * 6 + 2], KEYS[i * 6 + 3], KEYS[i * 6 + 4]
  redis.call('ZREM', run, rid)
  local old = redis.call('HGET', tok, rid)
  if old then
    local delta = actual - tonumber(old)
    redis.call('INCRBY', sum, delta)
    for j = 5, 6 do
      local b = KEYS[i * 6 + j]
      if redis.call('EXISTS', b) == 1 then
        if tonumber(redis.call('INCRBY', b, delta)) < 0 then redis.call('SET', b, 0, 'KEEPTTL') end
      end
    end
    if refund then
      redis.call('HDEL', tok, rid)
      redis.call('ZREM', log, rid)
    else
      redis.call('HSET', tok, rid, actual)
    end
  end
end
return 1
"""


# KEYS: the ``run`` key of each scope.  ARGV: id, lease (s).  Extends a live call's lease.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[2])
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    redis.call('ZADD', KEYS[i], now + lease, ARGV[1])
    if redis.call('PTTL', KEYS[i]) < lease * 1000 then
      redis.call('PEXPIRE', KEYS[i], math.ceil(lease * 1000))
    end
  end
end
return 1
"""


def _keys(bucket: str, scopes: tuple[str, ...], periods: Periods) -> list[str]:
    keys: list[str] = []
    for name in scopes:
        base = f"{_PREFIX}{{{bucket}}}:{name}:"
        keys += [base + "log", base + "tok", base + "sum", base + "run"]
        keys += [f"{base}d:{periods.day}", f"{base}m:{periods.month}"]
    return keys


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimiter:
    def __init__(
        self, client: redis.Redis, *, window_s: float = WINDOW_S, lease_s: float = LEASE_S
    ) -> None:
        self._window = window_s
        self._lease = lease_s
        self._client = client
        self._reserve = client.register_script(_RESERVE)
        self._finish = client.register_script(_FINISH)
        self._renew = client.register_script(_RENEW)
        self._lock = threading.Lock()
        # The reservations in flight, renewed while they live (see `Reservation`).
        self._live: weakref.WeakValueDictionary[str, Reservation] = weakref.WeakValueDictionary()
        self._renewer: threading.Thread | None = None

    @classmethod
    def from_url(
        cls, url: str, *, timeout_s: float = 1.0, lease_s: float = LEASE_S
    ) -> RedisLimiter:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(client, lease_s=lease_s)

    def reserve(
        self,
        bucket: str,
        scopes: Mapping[str, Limits],
        *,
        tokens: int,
        now: float | None = None,
        periods: Periods | None = None,
    ) -> Reservation:
        check_request(bucket, scopes, tokens)
        p = periods or Periods.now()
        names = tuple(scopes)
        probe = Reservation(bucket=bucket, scopes=names, tokens=tokens, at=0.0, periods=p)
        args: list[Any] = [
            probe.id,
            tokens,
            "" if now is None else repr(float(now)),
            repr(self._window),
            repr(self._lease),
        ]
        for limits in scopes.values():
            args += [_limit(getattr(limits, name)) for name in LIMIT_NAMES]
        reply = [_text(v) for v in self._run(self._reserve, _keys(bucket, names, p), args)]
        if reply[0] != "ok":
            raise _denied(reply, names, p)
        usage = {
            name: Usage(int(reply[2 + 3 * i]), int(reply[3 + 3 * i]), float(reply[4 + 3 * i]))
            for i, name in enumerate(names)
        }
        at = float(reply[1])
        return self._track(
            Reservation(
                bucket=bucket,
                scopes=names,
                tokens=tokens,
                at=at,
                periods=p,
                usage=usage,
                id=probe.id,
            )
        )

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        self._end(reservation, max(0, actual_tokens), refund=False)

    def release(self, reservation: Reservation) -> None:
        self._end(reservation, 0, refund=True)

    def charge(
        self, bucket: str, scopes: Sequence[str], tokens: int, *, periods: Periods | None = None
    ) -> None:
        if tokens <= 0:
            return
        p = periods or Periods.now()
        pipe = self._client.pipeline(transaction=True)
        for name in scopes:
            base = f"{_PREFIX}{{{bucket}}}:{name}:"
            budgets = ((f"{base}d:{p.day}", _DAY_TTL_MS), (f"{base}m:{p.month}", _MONTH_TTL_MS))
            for key, ttl in budgets:
                pipe.incrby(key, tokens)
                pipe.pexpire(key, ttl)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise LimiterUnavailable("The rate limiter is unavailable.") from exc

    def close(self) -> None:
        """Close the pool's connections; a renewal round still running reconnects once and
        ends with the reservations (they lapse with their leases at shut-down)."""
        self._client.close()

    def _end(self, reservation: Reservation, actual: int, *, refund: bool) -> None:
        with self._lock:
            self._live.pop(reservation.id, None)
        keys = _keys(reservation.bucket, reservation.scopes, reservation.periods)
        self._run(self._finish, keys, [reservation.id, actual, "1" if refund else "0"])

    def _track(self, reservation: Reservation) -> Reservation:
        """Keep renewing this reservation's lease until it is settled or released."""
        with self._lock:
            self._live[reservation.id] = reservation
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_leases, name="bulkhead-lease-renewal", daemon=True
                )
                self._renewer.start()
        return reservation

    def _renew_leases(self) -> None:
        """Every third of a lease, extend the lease of every live reservation; ends
        when there is none (the next reservation starts it again)."""
        stop = threading.Event()
        while not stop.wait(self._lease / 3):
            with self._lock:
                if not self._live:
                    self._renewer = None
                    return
                live = list(self._live.items())
            pipe = self._client.pipeline(transaction=False)
            for rid, r in live:
                run_keys = [f"{_PREFIX}{{{r.bucket}}}:{name}:run" for name in r.scopes]
                self._renew(keys=run_keys, args=[rid, repr(self._lease)], client=pipe)
            del live
            try:
                pipe.execute()
            except redis.RedisError as exc:  # the next round tries again; leases bound the loss
                log.warning("rate limiter: leases not renewed (%s)", type(exc).__name__)

    def answers(self) -> bool:
        """Whether Redis answers a PING now: the metrics scrape asks, requests never do."""
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    @staticmethod
    def _run(script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise LimiterUnavailable("The rate limiter is unavailable.") from exc


def _denied(reply: list[str], names: tuple[str, ...], periods: Periods) -> LimitExceeded:
    limit, scope = reply[0], names[int(reply[1]) - 1]
    if limit == "concurrency":
        wait = CONCURRENCY_RETRY_S
    elif limit in ("tokens_per_day", "tokens_per_month"):
        wait = budget_retry(limit, periods)
    else:
        wait = max(0.0, float(reply[2]))
    return LimitExceeded(limit, retry_after_s=wait, scope=scope)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

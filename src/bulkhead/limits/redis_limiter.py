"""The shared limiter: the sliding log of `limiter` kept in Redis, one Lua script per call.

Each key ``K`` lives in four Redis keys with the hash tag ``{K}``, so they sit
in one cluster slot and one script may touch all of them:

* ``bulkhead:lim:{K}:log``  sorted set, reservation id -> admission time
* ``bulkhead:lim:{K}:tok``  hash, reservation id -> tokens
* ``bulkhead:lim:{K}:sum``  string, the sum of ``tok``
* ``bulkhead:lim:{K}:run``  sorted set, reservation id -> lease end (calls in flight)

`reserve` expires old entries, checks all three limits and records the call
in one script, so one round trip (EVALSHA) admits or denies, and Redis runs
scripts one at a time: with any number of replicas the limits are exact.
Time is Redis's own clock (``TIME``) unless the caller passes `now`, so
replicas with skewed clocks still share one window.

Any Redis error (connection refused, timeout, script error) raises
`LimiterUnavailable`: the gateway fails closed rather than admit unchecked.
"""

from __future__ import annotations

from typing import Any

import redis

from bulkhead.limits.limiter import (
    CONCURRENCY_RETRY_S,
    LEASE_S,
    WINDOW_S,
    LimiterUnavailable,
    LimitExceeded,
    Limits,
    Reservation,
    check_key,
    check_tokens,
)

_PREFIX = "bulkhead:lim:"

# Shared by the scripts: drop entries that left the window, and expired leases.
_EXPIRE = """
local log, tok, sum, run = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function clock(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function expire(now, window)
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
  for _, rid in ipairs(old) do
    local n = tonumber(redis.call('HGET', tok, rid) or '0')
    redis.call('DECRBY', sum, n)
    redis.call('HDEL', tok, rid)
  end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window) end
  redis.call('ZREMRANGEBYSCORE', run, '-inf', now)
end
"""

# ARGV: id, tokens, rpm, tpm, concurrency (-1 = unlimited), now ('' = TIME), window, lease
# Returns {'ok', now} or {limit, retry_after}; numbers as strings (Lua -> Redis truncates).
_RESERVE = (
    _EXPIRE
    + """
local rid, tokens = ARGV[1], tonumber(ARGV[2])
local rpm, tpm, conc = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now, window, lease = clock(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
expire(now, window)
if conc >= 0 and redis.call('ZCARD', run) + 1 > conc then
  return {'concurrency', '-1'}
end
local count = redis.call('ZCARD', log)
if rpm >= 0 and count + 1 > rpm then
  local e = redis.call('ZRANGE', log, count - rpm, count - rpm, 'WITHSCORES')
  return {'rpm', tostring(tonumber(e[2]) + window - now)}
end
local used = tonumber(redis.call('GET', sum) or '0')
if tpm >= 0 and used + tokens > tpm then
  if tokens > tpm then return {'tpm', tostring(window)} end
  local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    used = used - tonumber(redis.call('HGET', tok, entries[i]) or '0')
    if used + tokens <= tpm then
      return {'tpm', tostring(tonumber(entries[i + 1]) + window - now)}
    end
  end
  return {'tpm', tostring(window)}
end
redis.call('ZADD', log, now, rid)
redis.call('HSET', tok, rid, tokens)
redis.call('INCRBY', sum, tokens)
redis.call('ZADD', run, now + lease, rid)
local ttl = math.ceil((window + lease) * 1000)
for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, ttl) end
return {'ok', tostring(now)}
"""
)

# ARGV: id, actual tokens (>= 0)
_SETTLE = """
local tok, sum, run = KEYS[2], KEYS[3], KEYS[4]
local rid, actual = ARGV[1], tonumber(ARGV[2])
local old = redis.call('HGET', tok, rid)
if old then
  redis.call('HSET', tok, rid, actual)
  redis.call('INCRBY', sum, actual - tonumber(old))
end
redis.call('ZREM', run, rid)
return 1
"""

# ARGV: id
_RELEASE = """
local log, tok, sum, run = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rid = ARGV[1]
local old = redis.call('HGET', tok, rid)
if old then
  redis.call('DECRBY', sum, tonumber(old))
  redis.call('HDEL', tok, rid)
end
redis.call('ZREM', log, rid)
redis.call('ZREM', run, rid)
return 1
"""


def _keys(key: str) -> list[str]:
    base = f"{_PREFIX}{{{key}}}:"
    return [base + "log", base + "tok", base + "sum", base + "run"]


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimiter:
    def __init__(
        self, client: redis.Redis, *, window_s: float = WINDOW_S, lease_s: float = LEASE_S
    ) -> None:
        self._window = window_s
        self._lease = lease_s
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 1.0) -> RedisLimiter:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(client)

    def reserve(
        self, key: str, limits: Limits, *, tokens: int, now: float | None = None
    ) -> Reservation:
        check_key(key)
        check_tokens(tokens)
        probe = Reservation(key=key, tokens=tokens, at=0.0)
        args = [
            probe.id,
            tokens,
            _limit(limits.rpm),
            _limit(limits.tpm),
            _limit(limits.concurrency),
            "" if now is None else repr(float(now)),
            repr(self._window),
            repr(self._lease),
        ]
        verdict, value = (_text(v) for v in self._run(self._reserve, key, args))
        if verdict != "ok":
            wait = CONCURRENCY_RETRY_S if verdict == "concurrency" else max(0.0, float(value))
            raise LimitExceeded(verdict, retry_after_s=wait)
        return Reservation(key=key, tokens=tokens, at=float(value), id=probe.id)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        self._run(self._settle, reservation.key, [reservation.id, max(0, actual_tokens)])

    def release(self, reservation: Reservation) -> None:
        self._run(self._release, reservation.key, [reservation.id])

    @staticmethod
    def _run(script: Any, key: str, args: list[Any]) -> Any:
        try:
            return script(keys=_keys(key), args=args)
        except redis.RedisError as exc:
            raise LimiterUnavailable("rate limiter unavailable") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

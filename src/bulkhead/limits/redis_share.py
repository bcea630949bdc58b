"""Shared capacity across replicas: a leased semaphore per shared deployment in Redis.

What `fairshare.FairQueue` does in one process, for every replica on one
Redis.  A deployment ``D`` lives in keys with the hash tag ``{D}`` (one
cluster slot, so one script may touch them all):

* ``bulkhead:cap:{D}:run``   sorted set, slot holder id -> lease end (ms, Redis's clock)
* ``bulkhead:cap:{D}:own``   hash, holder id -> tenant
* ``bulkhead:cap:{D}:held``  hash, tenant -> slots it holds
* ``bulkhead:cap:{D}:seen``  sorted set, tenant -> when it last asked (ms)
* ``bulkhead:cap:{D}:wt``    hash, tenant -> its weight
* ``bulkhead:cap:{D}:wait``  sorted set, tenant -> until when it counts as waiting (ms)

**Leases.**  Every slot is held under a lease (`lease_s`, 10 s by default)
that this process renews for its live calls every third of it, so a stream
may run for hours, while the slots of a replica that died (``kill -9``) free
themselves within one lease: each admission first drops the holders whose
lease ended.

**The admission rule** (one script, so it is atomic across replicas).  With
`C` slots, the tenants seen in the last `recent_s` seconds ("around") and
their weights summing to `W`, a tenant's *share* is ``C * w / W`` and its
*headroom* is ``min(C // 4, floor(share))`` slots.  A tenant ``T`` may take a
free slot when

1. the slots left after it cover the unused headroom of every other tenant
   around (headroom less what it holds), so a quiet tenant's next call finds
   a slot free instead of waiting behind a flood — the victim's latency does
   not depend on which replica the flood came through; and
2. ``T`` holds less than its share, or no other tenant is waiting.

A tenant whose call found no slot is registered as *waiting* for `wait_s`
(renewed at every poll), so the replicas see each other's queues: under
contention every tenant converges to its weighted share, and while nobody
else waits one tenant may use the whole deployment (work-conserving).

**Waiting.**  Each process keeps its own waiters per deployment, in FIFO
order per tenant, and one pump per deployment asks Redis for slots for all
of them in one script call: at once when a local slot is released, else
every `poll_s`.  A call that waits longer than `max_wait_s` gets
`LimitExceeded("capacity")` (429), as in one process.

**Redis down.**  Any Redis error raises `LimiterUnavailable` (503) for the
call and for every call waiting here; the gateway admits a tenant whose
configuration says `limits_fail_open` (alerted, audited).  The client's
pool reconnects by itself and the scripts are loaded again, so service comes
back with Redis.  A restarted Redis has forgotten the slots in flight: until
those calls end, the deployment may take up to that many more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import RedisError

from bulkhead.limits.fairshare import capacity_of
from bulkhead.limits.limiter import LimiterUnavailable, LimitExceeded

log = logging.getLogger(__name__)

_PREFIX = "bulkhead:cap:"
_NAMES = ("run", "own", "held", "seen", "wt", "wait")
UNAVAILABLE = "Shared capacity is unavailable."

# KEYS: run, own, held, seen, wt, wait.
# ARGV: capacity, lease ms, recent ms, wait ms, id prefix, then per caller: tenant, weight,
# slots wanted, '1' to be registered as waiting if it gets fewer.
# Returns one list of granted holder ids per caller.
_ACQUIRE = """
local run, own, held, seen, wt, wait = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local cap, lease, recent, waitms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local prefix = ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', run, '-inf', now)) do
  local who = redis.call('HGET', own, id)
  if who then
    if redis.call('HINCRBY', held, who, -1) <= 0 then redis.call('HDEL', held, who) end
    redis.call('HDEL', own, id)
  end
end
redis.call('ZREMRANGEBYSCORE', run, '-inf', now)
redis.call('ZREMRANGEBYSCORE', wait, '-inf', now)
for _, who in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', now - recent)) do
  redis.call('HDEL', wt, who)
end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - recent)
local callers = {}
for i = 6, #ARGV, 4 do
  local c = {name = ARGV[i], want = tonumber(ARGV[i + 2]), park = ARGV[i + 3] == '1', ids = {}}
  redis.call('ZADD', seen, now, c.name)
  redis.call('HSET', wt, c.name, ARGV[i + 1])
  table.insert(callers, c)
end
local around = redis.call('ZRANGE', seen, 0, -1)
local function map(key)
  local flat, out = redis.call('HGETALL', key), {}
  for i = 1, #flat, 2 do out[flat[i]] = tonumber(flat[i + 1]) end
  return out
end
local weights, holding = map(wt), map(held)
local total, weight, have = 0, {}, {}
for _, who in ipairs(around) do
  weight[who] = weights[who] or 1
  total = total + weight[who]
  have[who] = holding[who] or 0
end
local head = math.max(1, math.floor(cap / 4))
if cap <= 1 then head = 0 end
local function keep(who)
  return math.max(0, math.min(head, math.floor(cap * weight[who] / total)) - have[who])
end
local reserved = 0
for _, who in ipairs(around) do reserved = reserved + keep(who) end
local waiting = {}
for _, who in ipairs(redis.call('ZRANGE', wait, 0, -1)) do waiting[who] = true end
local function others_wait(me)
  for who, _ in pairs(waiting) do if who ~= me then return true end end
  for _, c in ipairs(callers) do if c.name ~= me and c.want > 0 then return true end end
  return false
end
local busy = redis.call('ZCARD', run)
local seq, granted = 0, true
while granted and busy < cap do
  granted = false
  for _, c in ipairs(callers) do
    local me = c.name
    if c.want > 0 and busy < cap then
      local mine = keep(me)
      local fits = cap - busy - 1 >= reserved - mine
      local fair = have[me] < cap * weight[me] / total or not others_wait(me)
      if fits and fair then
        seq = seq + 1
        local id = prefix .. '.' .. seq
        redis.call('ZADD', run, now + lease, id)
        redis.call('HSET', own, id, me)
        redis.call('HINCRBY', held, me, 1)
        have[me] = have[me] + 1
        reserved = reserved - mine + keep(me)
        busy = busy + 1
        c.want = c.want - 1
        table.insert(c.ids, id)
        granted = true
      end
    end
  end
end
local out = {}
for _, c in ipairs(callers) do
  if c.want > 0 and c.park then redis.call('ZADD', wait, now + waitms, c.name) end
  table.insert(out, c.ids)
end
local ttl = recent + lease
for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ttl) end
return out
"""

# KEYS: run, own, held.  ARGV: holder id.
_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  local who = redis.call('HGET', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  if who and redis.call('HINCRBY', KEYS[3], who, -1) <= 0 then redis.call('HDEL', KEYS[3], who) end
  return 1
end
return 0
"""

# KEYS: run, own, held, seen, wt, wait.  ARGV: lease ms, then holder ids (only live ones renewed).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
    n = n + 1
  end
end
for i = 1, 6 do
  if redis.call('PTTL', KEYS[i]) < lease then redis.call('PEXPIRE', KEYS[i], lease) end
end
return n
"""


def keys(deployment_id: str) -> list[str]:
    return [f"{_PREFIX}{{{deployment_id}}}:{name}" for name in _NAMES]


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[str]
    weight: int


@dataclass(slots=True)
class _Deployment:
    """This process's view of one deployment: its waiters, its live slots, its pump."""

    id: str
    keys: list[str]
    capacity: int
    waiting: dict[str, deque[_Waiter]] = field(default_factory=dict)
    # This process's live slots by holder id, renewed while the slot object lives: a
    # slot dropped without a release stops being renewed and frees itself in a lease.
    mine: weakref.WeakValueDictionary[str, RedisSlot] = field(
        default_factory=weakref.WeakValueDictionary
    )
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None


class RedisSlot:
    """One slot held in Redis: `release` frees it (in the background) exactly once."""

    __slots__ = ("__weakref__", "_capacity", "_deployment", "_id")

    def __init__(self, capacity: RedisCapacity, deployment: _Deployment, holder: str) -> None:
        self._capacity, self._deployment, self._id = capacity, deployment, holder

    def release(self) -> None:
        if self._id:
            self._capacity.give_back(self._deployment, self._id)
            self._id = ""


class RedisCapacity:
    """`SharedCapacity` in Redis; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        default_capacity: int,
        max_wait_s: float,
        lease_s: float = 10.0,
        recent_s: float = 10.0,
        wait_s: float = 1.0,
        poll_s: float = 0.01,
        timeout_s: float = 1.0,
    ) -> None:
        self.url = url
        self.default_capacity = default_capacity
        self.max_wait_s = max_wait_s
        self.lease_s, self.recent_s, self.wait_s, self.poll_s = lease_s, recent_s, wait_s, poll_s
        self._timeout = timeout_s
        self._deployments: dict[str, _Deployment] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._client: aredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._prefix = os.urandom(6).hex()
        self._seq = 0

    # The interface ---------------------------------------------------------------------

    async def acquire(
        self, deployment_id: str, options: Mapping[str, str], tenant: str, weight: int = 1
    ) -> RedisSlot:
        """A slot of the deployment for `tenant`, fairly across replicas; raises
        `LimitExceeded("capacity")` after `max_wait_s`, `LimiterUnavailable` if Redis is down."""
        dep = self._deployment(deployment_id, options)
        weight = max(1, weight)
        if not dep.waiting.get(tenant):
            ask = self._spawn(self._ask(dep, [(tenant, weight, 1)]))
            try:
                ids = await asyncio.shield(ask)
            except asyncio.CancelledError:  # the caller is gone: a slot it got goes back
                ask.add_done_callback(lambda done: self._unwanted(dep, done))
                raise
            if ids[0]:
                return self._hold(dep, ids[0][0])
        waiter = _Waiter(asyncio.get_running_loop().create_future(), weight)
        dep.waiting.setdefault(tenant, deque()).append(waiter)
        if dep.pump is None or dep.pump.done():
            dep.pump = self._spawn(self._pump(dep))
        try:
            holder = await asyncio.wait_for(asyncio.shield(waiter.future), self.max_wait_s)
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                return self._hold(dep, waiter.future.result())  # granted at the deadline
            waiter.future.cancel()
            raise LimitExceeded(
                "capacity", retry_after_s=max(1.0, self.max_wait_s), scope="deployment"
            ) from None
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.give_back(dep, waiter.future.result())
            waiter.future.cancel()
            raise
        return self._hold(dep, holder)

    def in_flight(self, deployment_id: str) -> int:
        """This process's live slots of a deployment (for tests and metrics)."""
        dep = self._deployments.get(deployment_id)
        return len(dep.mine) if dep is not None else 0

    # Slots -----------------------------------------------------------------------------

    def _hold(self, dep: _Deployment, holder: str) -> RedisSlot:
        slot = dep.mine[holder] = RedisSlot(self, dep, holder)
        if self._renewer is None or self._renewer.done():
            self._renewer = self._spawn(self._renew())
        return slot

    def give_back(self, dep: _Deployment, holder: str) -> None:
        """Free a slot: in Redis in the background, and wake this process's waiters."""
        dep.mine.pop(holder, None)
        self._spawn(self._release(dep, holder))

    def _unwanted(self, dep: _Deployment, ask: asyncio.Task[list[list[str]]]) -> None:
        if not ask.cancelled() and ask.exception() is None:
            for holder in ask.result()[0]:
                self.give_back(dep, holder)

    async def _release(self, dep: _Deployment, holder: str) -> None:
        try:
            await self._script("release")(keys=dep.keys[:3], args=[holder])
        except RedisError as exc:  # its lease frees it
            log.warning("shared capacity: a slot not released (%s)", type(exc).__name__)
        dep.wake.set()

    async def _renew(self) -> None:
        """Extend the leases of this process's live slots every third of a lease."""
        while any(len(d.mine) for d in self._deployments.values()):
            await asyncio.sleep(self.lease_s / 3)
            for dep in list(self._deployments.values()):
                if not len(dep.mine):
                    continue
                args = [int(self.lease_s * 1000), *dep.mine.keys()]
                try:
                    await self._script("renew")(keys=dep.keys, args=args)
                except RedisError as exc:
                    log.warning("shared capacity: leases not renewed (%s)", type(exc).__name__)

    # Waiting ---------------------------------------------------------------------------

    async def _pump(self, dep: _Deployment) -> None:
        """Ask for slots for every local waiter, until none is left."""
        while True:
            wanted = []
            for tenant, queue in list(dep.waiting.items()):
                while queue and queue[0].future.done():
                    queue.popleft()  # gave up while waiting
                if not queue:
                    del dep.waiting[tenant]
                    continue
                wanted.append((tenant, queue[0].weight, len(queue)))
            if not wanted:
                return
            dep.wake.clear()
            try:
                granted = await self._ask(dep, wanted)
            except LimiterUnavailable as exc:
                self._fail_all(dep, exc)
                return
            for (tenant, _, _), ids in zip(wanted, granted, strict=True):
                queue = dep.waiting.get(tenant, deque())
                for holder in ids:
                    while queue and queue[0].future.done():
                        queue.popleft()
                    if queue:
                        queue.popleft().future.set_result(holder)
                    else:  # its caller gave up meanwhile
                        self.give_back(dep, holder)
            if not any(granted):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(dep.wake.wait(), self.poll_s)

    @staticmethod
    def _fail_all(dep: _Deployment, exc: Exception) -> None:
        for queue in dep.waiting.values():
            for waiter in queue:
                if not waiter.future.done():
                    waiter.future.set_exception(LimiterUnavailable(str(exc)))
        dep.waiting.clear()

    async def _ask(self, dep: _Deployment, wanted: list[tuple[str, int, int]]) -> list[list[str]]:
        """One script call: slots for each (tenant, weight, count); the rest wait."""
        self._seq += 1
        args: list[Any] = [
            dep.capacity,
            int(self.lease_s * 1000),
            int(self.recent_s * 1000),
            int(self.wait_s * 1000),
            f"{self._prefix}.{self._seq}",
        ]
        for tenant, weight, count in wanted:
            args += [tenant, weight, count, "1"]
        try:
            reply = await self._script("acquire")(keys=dep.keys, args=args)
        except RedisError as exc:
            raise LimiterUnavailable(UNAVAILABLE) from exc
        return [[_text(i) for i in ids] for ids in reply]

    async def aclose(self) -> None:
        """Stop the renewer and the pumps and close the client (at shut-down).  Slots still
        held lapse with their leases; a waiter left is cancelled."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client, self._renewer = self._client, None, None
        self._deployments.clear()
        if client is not None:
            await client.aclose()

    # Plumbing --------------------------------------------------------------------------

    def _deployment(self, deployment_id: str, options: Mapping[str, str]) -> _Deployment:
        if self._loop is not asyncio.get_running_loop():
            # Waiters, pumps and the client belong to one event loop: a new loop starts afresh.
            self._deployments.clear()
            self._client, self._renewer = None, None
            self._loop = asyncio.get_running_loop()
        dep = self._deployments.get(deployment_id)
        if dep is None:
            dep = self._deployments[deployment_id] = _Deployment(
                deployment_id, keys(deployment_id), self.default_capacity
            )
        dep.capacity = capacity_of(options, self.default_capacity)
        return dep

    def _script(self, name: str) -> Any:
        """The script, on this loop's client (made on first use)."""
        if self._client is None:
            self._client = aredis.Redis.from_url(
                self.url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
            )
            self._scripts = {
                "acquire": self._client.register_script(_ACQUIRE),
                "release": self._client.register_script(_RELEASE),
                "renew": self._client.register_script(_RENEW),
            }
        return self._scripts[name]

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

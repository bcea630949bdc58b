"""Fair sharing of a shared deployment's capacity: weighted deficit round robin.

A shared deployment takes at most `capacity` calls in flight.  While it has
a free slot a call goes straight through.  When it is full, the call waits
in its tenant's own queue; each time a slot frees up, the next call is taken
from the tenants' queues in deficit-round-robin order (Shreedhar & Varghese,
1996) with each tenant's quantum equal to its weight, so under contention
tenants get slots in proportion to their weights however many calls each of
them queues.  A flooding tenant only lengthens its own queue.  A call that
waits longer than `max_wait_s` gives up with `LimitExceeded("capacity")`,
which the gateway answers with 429 and Retry-After.

One `FairQueue` per shared deployment per gateway process (`FairQueues`, the
embedded default); with Redis, `redis_share.RedisCapacity` shares each
deployment's slots across replicas by the same rules.  Both are a
`SharedCapacity`.  Dedicated and MIG deployments serve one tenant and are
never queued here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bulkhead.limits.limiter import LimitExceeded


class Slot(Protocol):
    def release(self) -> None:
        """Free the slot (once); the next waiter may take it."""


class SharedCapacity(Protocol):
    async def acquire(
        self, deployment_id: str, options: Mapping[str, str], tenant: str, weight: int = 1
    ) -> Slot:
        """Wait for a slot of the deployment, fairly across tenants; raises
        `LimitExceeded("capacity")` when the wait is too long, `LimiterUnavailable` when
        the store that shares the slots is down."""

    async def aclose(self) -> None:
        """Stop background work and let go of the store's connections (at shut-down)."""


@dataclass(slots=True)
class _Tenant:
    weight: int
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)
    deficit: int = 0


class FairQueue:
    """Slots of one shared deployment, shared fairly; see the module docstring.

    Work-conserving with one tenant.  With several, each other tenant that
    used the deployment within `recent_s` keeps a *headroom* — up to
    `capacity // 4` slots (at least 1; less if its weighted share is smaller),
    less what it already holds — that a flooding tenant may not fill, so a
    quiet tenant's next call finds a free slot instead of waiting for the
    flood's calls to finish, which on a server that finishes its batch
    together can take a whole service time.  Tenants that all hold their
    headroom share the rest by the round robin.
    """

    def __init__(
        self,
        capacity: int,
        *,
        max_wait_s: float,
        recent_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.max_wait_s = max_wait_s
        self.recent_s = recent_s
        self._clock = clock
        self.in_flight = 0
        self._held: dict[str, int] = {}  # slots in use per tenant
        self._seen: dict[str, float] = {}  # when each tenant last asked
        self._weights: dict[str, int] = {}
        self._tenants: dict[str, _Tenant] = {}
        self._round: deque[str] = deque()  # tenants with waiting calls, in turn order
        self.granted: dict[str, int] = {}  # slots given per tenant, for measurement

    @property
    def waiting(self) -> int:
        return sum(len(t.waiting) for t in self._tenants.values())

    @property
    def headroom(self) -> int:
        return max(1, self.capacity // 4) if self.capacity > 1 else 0

    async def acquire(self, tenant: str, weight: int = 1) -> None:
        """Wait for a slot (fairly); raises `LimitExceeded("capacity")` after `max_wait_s`."""
        self._seen[tenant] = self._clock()
        self._weights[tenant] = max(1, weight)
        if self._straight_through(tenant):
            self._grant(tenant)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(tenant, max(1, weight), waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.max_wait_s)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # granted at the deadline: keep the slot
            waiter.cancel()
            raise LimitExceeded(
                "capacity", retry_after_s=max(1.0, self.max_wait_s), scope="deployment"
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(tenant)  # granted, but the caller is gone: hand the slot on
            waiter.cancel()
            raise

    def release(self, tenant: str) -> None:
        self.in_flight -= 1
        held = self._held.get(tenant, 0) - 1
        if held > 0:
            self._held[tenant] = held
        else:
            self._held.pop(tenant, None)
        self._dispatch()

    def _straight_through(self, tenant: str) -> bool:
        """A free slot, and nobody queued for it, or it is this tenant's own headroom."""
        if self.in_flight >= self.capacity or tenant in self._tenants:
            return False
        return (not self._round or self._has_headroom(tenant)) and self._may_take(tenant)

    def _may_take(self, tenant: str) -> bool:
        """Whether `tenant` may take a free slot now without eating others' headroom."""
        return self.capacity - self.in_flight - 1 >= self._reserved_for_others(tenant)

    def _reserved_for_others(self, tenant: str) -> int:
        """Slots kept free for the other tenants around that are not queued (a queued
        tenant gets its turns from the round robin)."""
        around, total = self._around()
        return sum(self._keep(t, total) for t in around if t != tenant and t not in self._tenants)

    def _around(self) -> tuple[list[str], int]:
        edge = self._clock() - self.recent_s
        around = [t for t, at in self._seen.items() if at > edge]
        return around, sum(self._weights.get(t, 1) for t in around) or 1

    def _keep(self, tenant: str, total_weight: int) -> int:
        """A tenant's headroom not in use: up to `headroom` slots, or its weighted share."""
        share = self.capacity * self._weights.get(tenant, 1) // total_weight
        return max(0, min(self.headroom, share) - self._held.get(tenant, 0))

    def _has_headroom(self, tenant: str) -> bool:
        """A free slot is this tenant's own headroom (others could not have taken it)."""
        return self._keep(tenant, self._around()[1]) > 0

    def _grant(self, tenant: str) -> None:
        self.in_flight += 1
        self._held[tenant] = self._held.get(tenant, 0) + 1
        self.granted[tenant] = self.granted.get(tenant, 0) + 1

    def _enqueue(self, tenant: str, weight: int, waiter: asyncio.Future[None]) -> None:
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _Tenant(weight, deficit=weight)
            self._round.append(tenant)
        state.weight = weight
        state.waiting.append(waiter)
        self._dispatch()

    def _dispatch(self) -> None:
        self._forget_quiet()
        skipped = 0  # tenants passed over in a row because they are at their share
        while self.in_flight < self.capacity and self._round and skipped < len(self._round):
            name = self._round[0]
            state = self._tenants[name]
            while state.waiting and state.waiting[0].done():
                state.waiting.popleft()  # gave up while waiting
            if not state.waiting:
                self._round.popleft()
                del self._tenants[name]
                continue
            if not self._may_take(name):
                self._round.rotate(-1)
                skipped += 1
                continue
            if state.deficit < 1:
                # This tenant's turn is over: to the back, with next turn's quantum.
                state.deficit += state.weight
                self._round.rotate(-1)
                continue
            skipped = 0
            state.deficit -= 1
            self._grant(name)
            state.waiting.popleft().set_result(None)

    def _forget_quiet(self) -> None:
        if len(self._seen) > 64:
            edge = self._clock() - self.recent_s
            for tenant in [t for t, at in self._seen.items() if at <= edge]:
                del self._seen[tenant]
                self._weights.pop(tenant, None)


class _LocalSlot:
    __slots__ = ("_queue", "_tenant")

    def __init__(self, queue: FairQueue, tenant: str) -> None:
        self._queue: FairQueue | None = queue
        self._tenant = tenant

    def release(self) -> None:
        if self._queue is not None:
            self._queue.release(self._tenant)
            self._queue = None


class FairQueues:
    """One `FairQueue` per shared deployment, sized by its `max_in_flight` option:
    the `SharedCapacity` of one process."""

    def __init__(self, *, default_capacity: int, max_wait_s: float):
        self.default_capacity = default_capacity
        self.max_wait_s = max_wait_s
        self._queues: dict[str, FairQueue] = {}

    def for_deployment(self, deployment_id: str, options: Mapping[str, str]) -> FairQueue:
        queue = self._queues.get(deployment_id)
        capacity = capacity_of(options, self.default_capacity)
        if queue is None:
            queue = self._queues[deployment_id] = FairQueue(capacity, max_wait_s=self.max_wait_s)
        queue.capacity = capacity  # an operator's change applies to the next dispatch
        return queue

    async def acquire(
        self, deployment_id: str, options: Mapping[str, str], tenant: str, weight: int = 1
    ) -> Slot:
        queue = self.for_deployment(deployment_id, options)
        await queue.acquire(tenant, weight)
        return _LocalSlot(queue, tenant)

    async def aclose(self) -> None:
        """Nothing runs in the background and nothing is connected."""


def capacity_of(options: Mapping[str, str], default: int) -> int:
    raw = options.get("max_in_flight")
    if raw is None:
        return default
    try:
        return max(1, int(raw))
    except ValueError:
        return default

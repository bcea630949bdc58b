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

One `FairQueue` per shared deployment per gateway process; dedicated and MIG
deployments serve one tenant and are never queued here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from bulkhead.limits.limiter import LimitExceeded


@dataclass(slots=True)
class _Tenant:
    weight: int
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)
    deficit: int = 0


class FairQueue:
    def __init__(self, capacity: int, *, max_wait_s: float):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.max_wait_s = max_wait_s
        self.in_flight = 0
        self._tenants: dict[str, _Tenant] = {}
        self._round: deque[str] = deque()  # tenants with waiting calls, in turn order
        self.granted: dict[str, int] = {}  # slots given per tenant, for measurement

    @property
    def waiting(self) -> int:
        return sum(len(t.waiting) for t in self._tenants.values())

    async def acquire(self, tenant: str, weight: int = 1) -> None:
        """Wait for a slot (fairly); raises `LimitExceeded("capacity")` after `max_wait_s`."""
        if self.in_flight < self.capacity and not self._round:
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
                self.release()  # granted, but the caller is gone: hand the slot on
            waiter.cancel()
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._dispatch()

    def _grant(self, tenant: str) -> None:
        self.in_flight += 1
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
        while self.in_flight < self.capacity and self._round:
            name = self._round[0]
            state = self._tenants[name]
            while state.waiting and state.waiting[0].done():
                state.waiting.popleft()  # gave up while waiting
            if not state.waiting:
                self._round.popleft()
                del self._tenants[name]
                continue
            if state.deficit < 1:
                # This tenant's turn is over: to the back, with next turn's quantum.
                state.deficit += state.weight
                self._round.rotate(-1)
                continue
            state.deficit -= 1
            self._grant(name)
            state.waiting.popleft().set_result(None)


class FairQueues:
    """One `FairQueue` per shared deployment, sized by its `max_in_flight` option."""

    def __init__(self, *, default_capacity: int, max_wait_s: float):
        self.default_capacity = default_capacity
        self.max_wait_s = max_wait_s
        self._queues: dict[str, FairQueue] = {}

    def for_deployment(self, deployment_id: str, options: Mapping[str, str]) -> FairQueue:
        queue = self._queues.get(deployment_id)
        capacity = _capacity(options, self.default_capacity)
        if queue is None:
            queue = self._queues[deployment_id] = FairQueue(capacity, max_wait_s=self.max_wait_s)
        queue.capacity = capacity  # an operator's change applies to the next dispatch
        return queue


def _capacity(options: Mapping[str, str], default: int) -> int:
    raw = options.get("max_in_flight")
    if raw is None:
        return default
    try:
        return max(1, int(raw))
    except ValueError:
        return default

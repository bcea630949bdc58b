"""Abuse and anomaly detection: per key and per tenant baselines, extraction and probing patterns.

Every key and every tenant keeps an exponentially weighted mean and variance
of four counts per time bucket (10 s by default): requests, tokens, denials
(403/429) and guard hits.  Once the baseline has warmed up, a bucket whose
running count passes all of *floor*, *mean + z·sd* and *ratio * mean* raises
an alert at once, mid-bucket.  The floor keeps quiet tenants from alerting on
tiny bursts; the clamp in `_close` keeps an attack from teaching the baseline
that it is normal.

Each key also has a one-minute tumbling window for patterns that need no
baseline: many diverse prompts at a high rate (distinct prompts estimated by
linear counting over a 2048-bit map of salted hashes, so no prompt is kept),
logprob harvesting, max_tokens=1 probing, and 404s on many distinct ids
(cross-tenant probing).

A tenant that opted in (`throttle_on_alert`) has a key refused with
`RateLimited` for a cool-down when a key-level alert fires for it.  State is
held in LRU maps of bounded size; the observe path is a few dict lookups and
integer additions.  The detector is not thread-safe: it belongs to one event
loop.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from bulkhead.domain import Tenant, TenantContext
from bulkhead.errors import RateLimited
from bulkhead.observe.alerts import Alert

REQUEST_RATE = "request_rate"
TOKEN_VOLUME = "token_volume"  # noqa: S105 (an alert kind, not a secret)
DENY_RATE = "deny_rate"
GUARD_HITS = "guard_hits"
EXTRACTION_DIVERSITY = "extraction_diversity"
LOGPROB_HARVESTING = "logprob_harvesting"
MAX_TOKENS_PROBING = "max_tokens_probing"
CROSS_TENANT_PROBING = "cross_tenant_probing"

# The baseline counts, by index into `_Baseline.counts`.
_BASELINE_KINDS = (REQUEST_RATE, TOKEN_VOLUME, DENY_RATE, GUARD_HITS)
_PATTERN_KINDS = (EXTRACTION_DIVERSITY, LOGPROB_HARVESTING, MAX_TOKENS_PROBING)
KEY_KINDS = frozenset(_BASELINE_KINDS + _PATTERN_KINDS + (CROSS_TENANT_PROBING,))
_DENIED = frozenset({403, 429})
# Bits of `_Window.fired`: each pattern alerts once per window.
_DIVERSE, _LOGPROBS, _TINY, _PROBING = 1, 2, 4, 8
_PROMPT_BITS = 2048
_MISSING_BITS = 64
# Idle buckets beyond this many are folded into one decay step instead of a loop.
_MAX_IDLE_STEPS = 64
_MAX_GUARD_KINDS = 8


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When an observation is far enough from normal to alert; counts are per bucket or window."""

    bucket_s: float = 10.0
    warmup_buckets: int = 30
    halflife_buckets: float = 90.0
    z: float = 6.0
    ratio: float = 4.0
    # Minimum per-bucket counts: requests, tokens, denials, guard hits.
    floors: tuple[float, float, float, float] = (100.0, 100_000.0, 30.0, 10.0)
    window_s: float = 60.0
    diverse_min: int = 1_000
    diversity: float = 0.9
    logprobs_min: int = 100
    logprobs_share: float = 0.5
    tiny_min: int = 200
    tiny_share: float = 0.5
    tiny_max_tokens: int = 1
    not_found_min: int = 20
    not_found_distinct: int = 10


class _Baseline:
    """One key's or tenant's EWMA baseline and the running counts of its current bucket."""

    __slots__ = ("bucket", "closed", "counts", "fired", "guard_kinds", "limits", "means", "vars")

    def __init__(self, bucket: int):
        self.bucket = bucket
        self.closed = 0
        self.counts = [0.0, 0.0, 0.0, 0.0]
        self.means = [0.0, 0.0, 0.0, 0.0]
        self.vars = [0.0, 0.0, 0.0, 0.0]
        self.limits = [math.inf, math.inf, math.inf, math.inf]
        self.fired = 0
        self.guard_kinds: dict[str, int] | None = None


class _Window:
    """One key's counts in the current pattern window."""

    __slots__ = (
        "fired",
        "logprobs",
        "missing",
        "missing_seen",
        "prompts",
        "requests",
        "seen",
        "start",
        "tiny",
    )

    def __init__(self, start: float):
        self.start = start
        self.requests = self.prompts = self.logprobs = self.tiny = self.missing = 0
        self.missing_seen = 0
        self.seen: bytearray | None = None
        self.fired = 0


class _Key:
    __slots__ = ("baseline", "window")

    def __init__(self, bucket: int, now: float):
        self.baseline = _Baseline(bucket)
        self.window = _Window(now)


class AnomalyDetector:
    """Feed it every finished request (`observe`) and guard finding (`guard_hit`).

    `alert` receives each finding (typically `Alerter.send`); `throttle_on_alert`
    says whether a tenant chose automatic throttling, and `check` refuses a
    throttled key.
    """

    def __init__(
        self,
        *,
        alert: Callable[[Alert], object],
        thresholds: Thresholds | None = None,
        throttle_on_alert: Callable[[str], bool] = lambda tenant_id: False,
        throttle_s: float = 300.0,
        throttle_kinds: frozenset[str] = KEY_KINDS,
        max_keys: int = 20_000,
        max_tenants: int = 5_000,
        now: Callable[[], float] = time.monotonic,
    ):
        self.alert = alert
        self.th = thresholds or Thresholds()
        self.throttle_on_alert = throttle_on_alert
        self.throttle_s = throttle_s
        self.throttle_kinds = throttle_kinds
        self.max_keys, self.max_tenants = max_keys, max_tenants
        self.now = now
        self._alpha = 1.0 - 0.5 ** (1.0 / self.th.halflife_buckets)
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._tenants: OrderedDict[str, _Baseline] = OrderedDict()
        self._throttled: OrderedDict[str, float] = OrderedDict()

    # The observe path ------------------------------------------------------------------------

    def observe(
        self,
        ctx: TenantContext,
        *,
        status: int,
        tokens: int = 0,
        prompt_digest: int | None = None,
        logprobs: bool = False,
        max_tokens: int | None = None,
        not_found_digest: int | None = None,
    ) -> None:
        """One finished request; digests are in-process hashes, never the text itself."""
        tenant, key_id = ctx.tenant, ctx.credential_id
        if tenant is None:
            return  # Platform principals have no tenant to compare against.
        now = self.now()
        bucket = int(now // self.th.bucket_s)
        denied = 1.0 if status in _DENIED else 0.0
        key = self._key(key_id, bucket, now)
        self._tally(key.baseline, bucket, tokens, denied, tenant, key_id)
        self._tally(self._tenant(tenant.id, bucket), bucket, tokens, denied, tenant, None)
        w = key.window
        if now - w.start >= self.th.window_s:
            w = key.window = _Window(now)
        w.requests += 1
        if prompt_digest is not None:
            w.prompts += 1
            if w.seen is None:
                w.seen = bytearray(_PROMPT_BITS // 8)
            bit = prompt_digest & (_PROMPT_BITS - 1)
            w.seen[bit >> 3] |= 1 << (bit & 7)
        if logprobs:
            w.logprobs += 1
        if max_tokens is not None and max_tokens <= self.th.tiny_max_tokens:
            w.tiny += 1
        if status == 404:
            w.missing += 1
            if not_found_digest is not None:
                w.missing_seen |= 1 << (not_found_digest & (_MISSING_BITS - 1))
            self._probing(w, tenant, key_id)
        if w.requests & 15 == 0:
            self._patterns(key, tenant, key_id)

    def guard_hit(self, ctx: TenantContext, kind: str) -> None:
        """A guard found something in this request (`kind` names the check, e.g. "injection")."""
        tenant = ctx.tenant
        if tenant is None:
            return
        now = self.now()
        bucket = int(now // self.th.bucket_s)
        key = self._key(ctx.credential_id, bucket, now)
        for base, key_id in (
            (key.baseline, ctx.credential_id),
            (self._tenant(tenant.id, bucket), None),
        ):
            self._advance(base, bucket)
            base.counts[3] += 1
            _note_kind(base, kind)
            if base.counts[3] > base.limits[3]:
                self._spikes(base, tenant, key_id)

    def check(self, ctx: TenantContext) -> None:
        """Raise `RateLimited` while the caller's key is throttled."""
        until = self._throttled.get(ctx.credential_id)
        if until is None:
            return
        left = until - self.now()
        if left <= 0:
            del self._throttled[ctx.credential_id]
            return
        raise RateLimited("Too many requests for this API key; retry later.", retry_after_s=left)

    @property
    def tracked(self) -> tuple[int, int, int]:
        """How many keys, tenants and throttled keys are held in memory."""
        return len(self._keys), len(self._tenants), len(self._throttled)

    def __repr__(self) -> str:
        keys, tenants, throttled = self.tracked
        return f"AnomalyDetector(keys={keys}, tenants={tenants}, throttled={throttled})"

    # Baselines -------------------------------------------------------------------------------

    def _key(self, key_id: str, bucket: int, now: float) -> _Key:
        key = self._keys.get(key_id)
        if key is None:
            key = self._keys[key_id] = _Key(bucket, now)
            self._set_limits(key.baseline)
            if len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key_id)
        return key

    def _tenant(self, tenant_id: str, bucket: int) -> _Baseline:
        base = self._tenants.get(tenant_id)
        if base is None:
            base = self._tenants[tenant_id] = _Baseline(bucket)
            self._set_limits(base)
            if len(self._tenants) > self.max_tenants:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(tenant_id)
        return base

    def _tally(
        self,
        base: _Baseline,
        bucket: int,
        tokens: int,
        denied: float,
        tenant: Tenant,
        key_id: str | None,
    ) -> None:
        if base.bucket != bucket:
            self._advance(base, bucket)
        counts, limits = base.counts, base.limits
        counts[0] += 1
        counts[1] += tokens
        counts[2] += denied
        if counts[0] > limits[0] or counts[1] > limits[1] or counts[2] > limits[2]:
            self._spikes(base, tenant, key_id)

    def _advance(self, base: _Baseline, bucket: int) -> None:
        """Close the buckets that have ended (idle ones count as zeros) and set new limits."""
        idle = bucket - base.bucket - 1
        if idle < 0:
            return
        self._close(base)
        for _ in range(min(idle, _MAX_IDLE_STEPS)):
            self._close(base)
        if idle > _MAX_IDLE_STEPS:
            decay = (1.0 - self._alpha) ** (idle - _MAX_IDLE_STEPS)
            base.means = [m * decay for m in base.means]
            base.vars = [v * decay for v in base.vars]
            base.closed += idle - _MAX_IDLE_STEPS
        base.bucket = bucket
        base.fired = 0
        base.guard_kinds = None
        self._set_limits(base)

    def _close(self, base: _Baseline) -> None:
        # Early on the weight is 1/n (a plain mean), so the warm-up is not biased to zero.
        base.closed += 1
        a = max(self._alpha, 1.0 / base.closed)
        for i, count in enumerate(base.counts):
            x = min(count, base.limits[i])  # An alerting bucket counts only up to its limit.
            diff = x - base.means[i]
            step = a * diff
            base.means[i] += step
            base.vars[i] = (1.0 - a) * (base.vars[i] + diff * step)
            base.counts[i] = 0.0

    def _set_limits(self, base: _Baseline) -> None:
        if base.closed < self.th.warmup_buckets:
            return
        th = self.th
        for i, floor in enumerate(th.floors):
            mean = base.means[i]
            base.limits[i] = max(floor, mean + th.z * math.sqrt(base.vars[i]), th.ratio * mean)

    def _spikes(self, base: _Baseline, tenant: Tenant, key_id: str | None) -> None:
        for i, kind in enumerate(_BASELINE_KINDS):
            if base.counts[i] > base.limits[i] and not base.fired & (1 << i):
                base.fired |= 1 << i
                figures = {
                    "observed": base.counts[i],
                    "threshold": base.limits[i],
                    "baseline_mean": base.means[i],
                    "bucket_s": self.th.bucket_s,
                }
                if i == 3 and base.guard_kinds:
                    figures.update({f"kind.{k}": n for k, n in base.guard_kinds.items()})
                self._fire(kind, tenant, key_id, figures)

    # Patterns --------------------------------------------------------------------------------

    def _patterns(self, key: _Key, tenant: Tenant, key_id: str) -> None:
        w, th = key.window, self.th
        if w.prompts >= th.diverse_min and not w.fired & _DIVERSE:
            usual = key.baseline.means[0] * th.window_s / th.bucket_s
            warmed = key.baseline.closed >= th.warmup_buckets
            ratio = _distinct(w.seen, _PROMPT_BITS) / w.prompts
            if ratio >= th.diversity and (not warmed or w.requests > th.ratio * usual):
                w.fired |= _DIVERSE
                figures = {"requests": w.requests, "prompts": w.prompts, "distinct_ratio": ratio}
                # Without a baseline (a new key, a restart) a busy key looks the same: tell, but
                # do not throttle on this alone.
                figures = self._in_window(figures)
                self._fire(EXTRACTION_DIVERSITY, tenant, key_id, figures, throttle=warmed)
        for flag, kind, n, least, share in (
            (_LOGPROBS, LOGPROB_HARVESTING, w.logprobs, th.logprobs_min, th.logprobs_share),
            (_TINY, MAX_TOKENS_PROBING, w.tiny, th.tiny_min, th.tiny_share),
        ):
            if n >= least and n >= share * w.requests and not w.fired & flag:
                w.fired |= flag
                figures = {"requests": w.requests, "matching": n, "share": n / w.requests}
                self._fire(kind, tenant, key_id, self._in_window(figures))

    def _probing(self, w: _Window, tenant: Tenant, key_id: str) -> None:
        th = self.th
        if w.missing < th.not_found_min or w.fired & _PROBING:
            return
        distinct = _distinct(w.missing_seen.to_bytes(_MISSING_BITS // 8), _MISSING_BITS)
        if distinct >= th.not_found_distinct:
            w.fired |= _PROBING
            figures = {"requests": w.requests, "not_found": w.missing, "distinct_ids": distinct}
            self._fire(CROSS_TENANT_PROBING, tenant, key_id, self._in_window(figures))

    def _in_window(self, figures: dict[str, float]) -> dict[str, float]:
        figures["window_s"] = self.th.window_s
        return figures

    # Alerts and throttling -------------------------------------------------------------------

    def _fire(
        self,
        kind: str,
        tenant: Tenant,
        key_id: str | None,
        figures: dict[str, float],
        *,
        throttle: bool = True,
    ) -> None:
        self.alert(Alert(kind, tenant.id, key_id, tenant.name, figures))
        if key_id is None or not throttle or kind not in self.throttle_kinds:
            return
        if self.throttle_on_alert(tenant.id):
            self._throttled[key_id] = self.now() + self.throttle_s
            self._throttled.move_to_end(key_id)
            while len(self._throttled) > self.max_keys:
                self._throttled.popitem(last=False)


def _distinct(bits: bytes | bytearray | None, size: int) -> float:
    """Linear counting (Whang et al., 1990): distinct items from the share of zero bits."""
    if bits is None:
        return 0.0
    zeros = size - int.from_bytes(bits).bit_count()
    return size * math.log(size / max(zeros, 1))


def _note_kind(base: _Baseline, kind: str) -> None:
    # Kinds name our own checks; anything else (or too many) is counted without a name.
    if base.guard_kinds is None:
        base.guard_kinds = {}
    name = kind if kind.replace(".", "_").isidentifier() and len(kind) <= 32 else "other"
    if name in base.guard_kinds or len(base.guard_kinds) < _MAX_GUARD_KINDS:
        base.guard_kinds[name] = base.guard_kinds.get(name, 0) + 1

"""Metrics read at scrape time, from callables the composition root hands in.

A fact that changes rarely (a key's age, a worker's restarts, whether a
backend answers) is read when Prometheus scrapes, on the metrics listener's
thread, so the request path pays nothing for it.  Each collector takes a plain
callable: `observe` imports neither the store nor the runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class LabelledGauges(Collector):
    """One gauge family with one label, its samples read from `read()` at each scrape."""

    def __init__(self, name: str, doc: str, label: str, read: Callable[[], Mapping[str, float]]):
        self.name, self.doc, self.label, self._read = name, doc, label, read

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for value, sample in sorted(self._read().items()):
            family.add_metric([value], sample)
        return [family]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.doc, labels=[self.label])


@dataclass(frozen=True, slots=True)
class WorkerFacts:
    """What the scrape shows of one local worker: its deployment's id and model, no more."""

    deployment: str
    model: str
    restarts: int
    ready: bool
    failed: bool  # given up on: it failed to start too many times in a row


_WORKER_LABELS = ["deployment", "model"]


class Workers(Collector):
    """``bulkhead_worker_restarts_total``, ``bulkhead_worker_ready`` and ``bulkhead_worker_failed``.

    The restart count is the supervisor's own, kept per worker; it starts again
    from 0 when the deployment's spec changes (a new worker), which
    Prometheus's `increase` reads as a counter reset.
    """

    def __init__(self, read: Callable[[], Iterable[WorkerFacts]]):
        self._read = read

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        restarts, ready, failed = self._families()
        for w in self._read():
            labels = [w.deployment, w.model]
            restarts.add_metric(labels, w.restarts)
            ready.add_metric(labels, float(w.ready))
            failed.add_metric(labels, float(w.failed))
        return [restarts, ready, failed]

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(
                "bulkhead_worker_restarts",
                "Restarts of each local model worker since it was started for its spec.",
                labels=_WORKER_LABELS,
            ),
            GaugeMetricFamily(
                "bulkhead_worker_ready",
                "1 while the local worker answers, else 0 (starting, restarting or failed).",
                labels=_WORKER_LABELS,
            ),
            GaugeMetricFamily(
                "bulkhead_worker_failed",
                "1 when the supervisor gave up on the worker (its model does not load).",
                labels=_WORKER_LABELS,
            ),
        )

"""Prometheus metrics of one service, in a registry of its own.

Plain Python (prometheus_client, no web framework): a domain core declares and updates its
counters here; shared/web.py serves them as ``GET /metrics`` and adds the request figures.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Prometheus metrics of one app, in its own registry (never the process-global one:
    tests build many apps in one process and names would collide)."""

    def __init__(self, service: str, namespace: str = "sensor_hub") -> None:
        self.service = service
        self.namespace = namespace
        self.registry = CollectorRegistry()

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, namespace=self.namespace, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labels, namespace=self.namespace, registry=self.registry)

    def gauge_function(self, name: str, doc: str, fn: Callable[[], float]) -> Gauge:
        """A gauge read from ``fn()`` at scrape time (queue lengths, client counts...)."""
        gauge = self.gauge(name, doc)
        gauge.set_function(fn)
        return gauge

    def histogram(self, name: str, doc: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS) -> Histogram:
        return Histogram(name, doc, labels, namespace=self.namespace, registry=self.registry,
                         buckets=buckets)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

"""The learning's part of ``/metrics`` (the ML dashboard): predictions and corrections per
window, the correction rate, validation error per version, the confidence histogram, and
inference and training latency. Version numbers are read at scrape time from the record
(versions.py), so they are true after a restart and a rollback alike."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.metrics import Metrics

from .learner import Learner

CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class LearningMetrics(Collector):
    def __init__(self, metrics: Metrics, learner: Learner) -> None:
        self.learner = learner
        self._lock = threading.Lock()
        self._predictions: Counter[str] = Counter()
        self._corrections: Counter[str] = Counter()
        self.confidence = metrics.histogram("recommendation_confidence", "Confidence of the recommendations made",
                                            buckets=CONFIDENCE_BUCKETS)
        self.training = metrics.histogram("training_seconds", "Time one model update took (fine-tuning only)",
                                          buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0))
        self.window_predictions = metrics.counter("window_predictions", "Recommendations per window", ("window",))
        self.window_corrections = metrics.counter("window_corrections", "Corrections received per window",
                                                  ("window", "outcome"))
        metrics.registry.register(self)

    def predicted(self, window: str, confidence: float) -> None:
        with self._lock:
            self._predictions[window] += 1
        self.window_predictions.labels(window).inc()
        self.confidence.observe(confidence)

    def corrected(self, window: str, stored: bool) -> None:
        if stored:
            with self._lock:
                self._corrections[window] += 1
        self.window_corrections.labels(window, "stored" if stored else "ignored").inc()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rate = GaugeMetricFamily("sensor_hub_correction_rate", "Corrections stored per recommendation, per window "
                                 "(since the service started)", labels=["window"])
        with self._lock:
            for window, made in self._predictions.items():
                rate.add_metric([window], self._corrections[window] / made if made else 0.0)
        yield rate
        error = GaugeMetricFamily("sensor_hub_model_validation_error", "Mean absolute error (points) of each "
                                  "model version on its validation set", labels=["version", "status", "set"])
        ece = GaugeMetricFamily("sensor_hub_model_calibration_error", "Expected calibration error of the "
                                "active version's confidence on validation data")
        invalid = GaugeMetricFamily("sensor_hub_corrections_invalid", "Samples ignored for missing or invalid "
                                    "inputs, by field", labels=["field"])
        for version in self.learner.versions.list():
            for name in ("corrections_mae", "rule_mae"):
                value = version.validation.get(name)
                if value is not None:
                    error.add_metric([version.version, version.status, name.removesuffix("_mae")], float(value))
        active = self.learner.versions.active()
        if active is not None and active.validation.get("ece") is not None:
            ece.add_metric([], float(active.validation["ece"]))
        for field, count in self.learner.store.invalid.items():
            invalid.add_metric([field], count)
        yield error
        yield ece
        yield invalid

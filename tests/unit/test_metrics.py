"""What ``/metrics`` shows: dashboards and alerts are written against these exact names, help
texts, types, labels and buckets, so the exposition of a fresh registry, and of one in which
every metric has been touched through its labels, is held to a recorded text
(tests/data/metrics.prom; regenerate it with ``python -m tests.unit.test_metrics`` only when a
change to the metrics is meant)."""

from __future__ import annotations

from pathlib import Path
from typing import get_type_hints

from prometheus_client import Counter, Gauge, Histogram, generate_latest

from taskflow.metrics import _METRICS, CONTROLLER, QUEUE_NAME, Metrics

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "metrics.prom"


def _exposition() -> str:
    fresh = Metrics()
    used = Metrics()
    used.track_task_states(lambda: {"Running": 2, "Successful": 1})
    used.reconcile_total.labels(CONTROLLER, "success").inc()
    used.reconcile_errors.labels(CONTROLLER).inc()
    used.reconcile_time.labels(CONTROLLER).observe(0.02)
    used.workqueue_depth.labels(QUEUE_NAME).set(3)
    used.workqueue_adds.labels(QUEUE_NAME).inc()
    used.workqueue_retries.labels(QUEUE_NAME).inc()
    used.workqueue_queue_duration.labels(QUEUE_NAME).observe(0.5)
    used.workqueue_work_duration.labels(QUEUE_NAME).observe(0.001)
    used.leader.labels("taskflow").set(1)
    used.task_duration.labels("Successful").observe(42)
    used.watch_relists.labels("tasks").inc()
    used.watch_errors.labels("pods").inc()
    used.api_requests.labels("POST", "pods", "201").inc()
    used.rate_limiter_wait.labels("PATCH").observe(0.01)
    used.api_retries.labels("429", "PATCH").inc()
    text = "".join(generate_latest(m.registry).decode() + "# ----\n" for m in (fresh, used))
    # A counter's ``_created`` sample is the wall-clock time it was made.
    return "".join(line for line in text.splitlines(keepends=True) if "_created" not in line)


def test_exposition_is_unchanged() -> None:
    assert _exposition() == GOLDEN.read_text(encoding="utf-8")


def test_every_metric_in_the_table_is_a_typed_attribute() -> None:
    """The table builds the attributes by name; their annotations are what callers type-check
    against, so the two must agree one to one."""
    hints = get_type_hints(Metrics)
    declared = {name for name, kind in hints.items() if kind in (Counter, Gauge, Histogram)}
    assert declared == {spec.attr for spec in _METRICS}
    for spec in _METRICS:
        assert hints[spec.attr] is spec.kind, spec.attr
        assert isinstance(getattr(Metrics(), spec.attr), spec.kind), spec.attr


if __name__ == "__main__":
    GOLDEN.write_text(_exposition(), encoding="utf-8")

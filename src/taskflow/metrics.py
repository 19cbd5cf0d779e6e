"""Prometheus metric objects.

Names follow controller-runtime / client-go so that existing dashboards work:
``controller_runtime_reconcile_*``, ``workqueue_*``, ``leader_election_master_status``.
taskflow's own metrics are prefixed ``taskflow_``.

Every :class:`Metrics` owns its registry, so several operators can live in one process
(tests run two engines side by side) without clashing on the global default registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTROLLER = "task"
QUEUE_NAME = "task"
RESULTS = ("success", "error", "requeue", "requeue_after")
TASK_STATES = ("Pending", "Running", "Successful", "Failure")

_RECONCILE_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_QUEUE_BUCKETS = (1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
_RATE_LIMIT_BUCKETS = (0.0, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
_TASK_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class _TaskStatesCollector(Collector):
    """``taskflow_tasks{status}``: Tasks in the cache by status, computed at scrape time."""

    def __init__(self, count: Callable[[], Mapping[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "taskflow_tasks", "Tasks known to the operator by status.", labels=["status"]
        )
        counts = dict.fromkeys(TASK_STATES, 0)
        counts.update(self._count())
        for state, n in sorted(counts.items()):
            family.add_metric([state], n)
        yield family

    def describe(self) -> Iterable[Metric]:
        return []


class _Spec(NamedTuple):
    """One metric: the :class:`Metrics` attribute that holds it and what it is."""

    attr: str
    kind: type[Counter] | type[Gauge] | type[Histogram]
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = None
    #: Label values whose series show (as 0) before anything happens: a dashboard's rate()
    #: needs the series to exist before the first event.
    children: tuple[tuple[str, ...], ...] = ()


_CONTROLLER_CHILD = ((CONTROLLER,),)
_QUEUE_CHILD = ((QUEUE_NAME,),)

#: In registration order, which is the order ``/metrics`` shows them in.
_METRICS: Final = (
    _Spec(
        "reconcile_total",
        Counter,
        "controller_runtime_reconcile_total",
        "Total number of reconciliations per controller.",
        ("controller", "result"),
        children=tuple((CONTROLLER, result) for result in RESULTS),
    ),
    _Spec(
        "reconcile_errors",
        Counter,
        "controller_runtime_reconcile_errors_total",
        "Total number of reconciliation errors per controller.",
        ("controller",),
        children=_CONTROLLER_CHILD,
    ),
    _Spec(
        "reconcile_time",
        Histogram,
        "controller_runtime_reconcile_time_seconds",
        "Length of time per reconciliation per controller.",
        ("controller",),
        _RECONCILE_BUCKETS,
        _CONTROLLER_CHILD,
    ),
    _Spec(
        "workqueue_depth",
        Gauge,
        "workqueue_depth",
        "Current depth of workqueue.",
        ("name",),
        children=_QUEUE_CHILD,
    ),
    _Spec(
        "workqueue_adds",
        Counter,
        "workqueue_adds_total",
        "Total number of adds handled by workqueue.",
        ("name",),
        children=_QUEUE_CHILD,
    ),
    _Spec(
        "workqueue_retries",
        Counter,
        "workqueue_retries_total",
        "Total number of retries handled by workqueue.",
        ("name",),
        children=_QUEUE_CHILD,
    ),
    _Spec(
        "workqueue_queue_duration",
        Histogram,
        "workqueue_queue_duration_seconds",
        "How long in seconds an item stays in workqueue before being requested.",
        ("name",),
        _QUEUE_BUCKETS,
        _QUEUE_CHILD,
    ),
    _Spec(
        "workqueue_work_duration",
        Histogram,
        "workqueue_work_duration_seconds",
        "How long in seconds processing an item from workqueue takes.",
        ("name",),
        _QUEUE_BUCKETS,
        _QUEUE_CHILD,
    ),
    _Spec(
        "leader",
        Gauge,
        "leader_election_master_status",
        "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
        "backup, 1 indicates master. 'name' is the string used to identify the lease.",
        ("name",),
    ),
    _Spec(
        "task_duration",
        Histogram,
        "taskflow_task_duration_seconds",
        "Run time of finished Tasks (first step start to last step end), by result.",
        ("result",),
        _TASK_BUCKETS,
    ),
    _Spec(
        "watch_relists",
        Counter,
        "taskflow_watch_relists_total",
        "Full LISTs done by a watch stream (initial and after 410 Gone).",
        ("resource",),
    ),
    _Spec(
        "watch_errors",
        Counter,
        "taskflow_watch_errors_total",
        "Watch stream failures that led to a reconnect with backoff.",
        ("resource",),
    ),
    _Spec(
        "api_requests",
        Counter,
        "taskflow_api_requests_total",
        "Write requests sent to the API server, by verb, resource and HTTP code.",
        ("verb", "resource", "code"),
    ),
    # client-go's rest_client_* names: client-side throttling and server pushback
    _Spec(
        "rate_limiter_wait",
        Histogram,
        "rest_client_rate_limiter_duration_seconds",
        "Client-side latency of the QPS/burst rate limiter, by verb.",
        ("verb",),
        _RATE_LIMIT_BUCKETS,
    ),
    _Spec(
        "api_retries",
        Counter,
        "rest_client_request_retries_total",
        "Requests retried after the API server refused them for now (429, or 503 with "
        "Retry-After), by status code and verb.",
        ("code", "verb"),
    ),
)


def _build(spec: _Spec, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
    metric: Counter | Gauge | Histogram
    if spec.buckets is None:
        metric = spec.kind(spec.name, spec.help, spec.labels, registry=registry)
    else:
        metric = Histogram(
            spec.name, spec.help, spec.labels, buckets=spec.buckets, registry=registry
        )
    for values in spec.children:
        metric.labels(*values)
    return metric


class Metrics:
    """One registry's metrics; the attributes are those named in ``_METRICS``."""

    reconcile_total: Counter
    reconcile_errors: Counter
    reconcile_time: Histogram
    workqueue_depth: Gauge
    workqueue_adds: Counter
    workqueue_retries: Counter
    workqueue_queue_duration: Histogram
    workqueue_work_duration: Histogram
    leader: Gauge
    task_duration: Histogram
    watch_relists: Counter
    watch_errors: Counter
    api_requests: Counter
    rate_limiter_wait: Histogram
    api_retries: Counter

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        for spec in _METRICS:
            setattr(self, spec.attr, _build(spec, self.registry))
        self._task_states: _TaskStatesCollector | None = None

    def track_task_states(self, count: Callable[[], Mapping[str, int]]) -> None:
        """Register the scrape-time ``taskflow_tasks`` gauge backed by ``count()``."""
        if self._task_states is not None:
            self.registry.unregister(self._task_states)
        self._task_states = _TaskStatesCollector(count)
        self.registry.register(self._task_states)

    def reconcile_count(self, result: str) -> float:
        """Current value of ``controller_runtime_reconcile_total{result=...}`` (for tests)."""
        value = self.registry.get_sample_value(
            "controller_runtime_reconcile_total", {"controller": CONTROLLER, "result": result}
        )
        return value or 0.0

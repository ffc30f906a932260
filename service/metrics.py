"""Prometheus metrics: what each process observes, and the text a scrape answers with.

Multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (by `migctl serve` for its gunicorn
workers and its worker process): every process writes its samples to files there, and a
scrape merges them. Figures that live in the control database (queue, workers, states,
operation counts) are read at scrape time instead, so they are right across hosts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LONG_SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

HTTP_REQUESTS = Counter(
    "migctl_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "migctl_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=_SECONDS,
)
OPERATION_DURATION = Histogram(
    "migctl_operation_duration_seconds",
    "Time from an operation's start to its end, by action and final status.",
    ["action", "status"],
    buckets=_LONG_SECONDS,
)
STEP_DURATION = Histogram(
    "migctl_step_duration_seconds",
    "Time one revision took to apply or unapply, by direction.",
    ["direction"],
    buckets=_LONG_SECONDS,
)


@dataclass(frozen=True)
class ControlFigures:
    """What the control database says at scrape time."""

    queued: int
    oldest_queued_seconds: float
    running: int
    heartbeat_age_seconds: float | None  # the most recent live worker's; None: no worker
    operations: dict[tuple[str, str, str], int] = field(default_factory=dict)
    states: dict[str, tuple[int | None, bool | None]] = field(default_factory=dict)


class _ControlCollector(Collector):
    def __init__(self, figures: ControlFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterable[Metric]:
        f = self.figures
        yield _gauge("migctl_queue_depth", "Operations queued, not yet claimed.", f.queued)
        yield _gauge(
            "migctl_queue_oldest_age_seconds",
            "Age of the oldest queued operation (0 when none).",
            f.oldest_queued_seconds,
        )
        yield _gauge("migctl_operations_running", "Operations running now.", f.running)
        if f.heartbeat_age_seconds is not None:
            yield _gauge(
                "migctl_worker_heartbeat_age_seconds",
                "Seconds since the most recent worker heartbeat.",
                f.heartbeat_age_seconds,
            )
        ended = CounterMetricFamily(
            "migctl_operations",
            "Operations that ended, by database, action and final status.",
            labels=["database", "action", "status"],
        )
        for (database, action, status), count in sorted(f.operations.items()):
            ended.add_metric([database, action, status], count)
        yield ended
        yield from _state_gauges(f.states)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _state_gauges(states: dict[str, tuple[int | None, bool | None]]) -> Iterable[Metric]:
    pending = GaugeMetricFamily(
        "migctl_database_pending_revisions",
        "Revisions an upgrade to heads would apply, as a worker last read them.",
        labels=["database"],
    )
    current = GaugeMetricFamily(
        "migctl_database_up_to_date",
        "1 when the database is at its heads, 0 when not, as a worker last read it.",
        labels=["database"],
    )
    for database, (count, up_to_date) in sorted(states.items()):
        if count is not None:
            pending.add_metric([database], count)
        if up_to_date is not None:
            current.add_metric([database], float(up_to_date))
    return (pending, current)


def exposition(figures: ControlFigures, multiprocess_dir: Path | None) -> bytes:
    """The text of one scrape: this host's processes (merged) and the control figures."""
    processes = REGISTRY
    if multiprocess_dir is not None:  # a registry per scrape, as multiprocess mode asks
        processes = CollectorRegistry(support_collectors_without_names=True)
        multiprocess.MultiProcessCollector(processes, str(multiprocess_dir))  # type: ignore[no-untyped-call]
    control = CollectorRegistry()
    control.register(_ControlCollector(figures))
    return generate_latest(processes) + generate_latest(control)


def process_ended(multiprocess_dir: Path, pid: int) -> None:
    """gunicorn's child_exit: drop a dead worker's live gauges (none today: harmless)."""
    multiprocess.mark_process_dead(pid, str(multiprocess_dir))  # type: ignore[no-untyped-call]

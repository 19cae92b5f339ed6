"""Prometheus metrics, on a registry owned by the app (no process-global state, so tests can build
many apps). Names follow Prometheus conventions: ``_total`` counters, ``_seconds`` histograms.

With ``serve --workers N`` every worker counts its own reviews, and a scrape reaches whichever
worker the kernel hands the connection to; per-worker registries would make one Pod's counters jump
back and forth. So the supervisor gives the workers one directory and each worker calls
:func:`share` before building its app: prometheus_client's multiprocess mode then keeps every value
in a per-process mmap file there, and ``/metrics`` on any worker sums the files of all of them.
A dead worker's counters stay in its files (a Pod's totals never go backwards); its ``live*``
gauges are dropped by :func:`mark_dead`. A single process keeps a plain registry per app.
"""

from __future__ import annotations

import bisect
import functools
import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import prometheus_client as prom
from prometheus_client import metrics_core, multiprocess, values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

FILE_READING: Literal["livemostrecent"] = "livemostrecent"
"""How workers' readings of the same files on disk (policy files valid? seconds until the serving
certificate expires?) combine: the value last set by a live worker. Every worker polls the same
files, so the latest reading is the truest. ``min`` would report "invalid" and "expires in 0 s"
whenever a worker starts (its gauge reads 0 until its app has loaded policies and certificate; an
unset value has no timestamp, so ``mostrecent`` ignores it), ``max`` would keep the oldest
certificate reading, and ``all`` would give every worker its own series (a ``pid`` label)."""

# Admission latency budgets are milliseconds; the API server's timeout is at most 30 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def share(directory: Path) -> None:
    """Switch this process to multiprocess metrics kept in ``directory``: once per worker, after the
    fork and before any :class:`Metrics` is built.

    prometheus_client picks its value class when it is first imported, from ``PROMETHEUS_MULTIPROC_DIR``;
    a forked worker inherits the supervisor's import (plain in-memory values), so setting the variable
    is not enough: the value class is swapped here too. Process-wide, as prometheus_client's own
    switch is: a single-process server never calls it, nor does the test process itself.
    """
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def shared_directory() -> str | None:
    """The directory of the files this process's metrics are kept in, or ``None`` for in-memory values."""
    if getattr(values.ValueClass, "_multiprocess", False):
        return os.environ.get(MULTIPROC_ENV)
    return None


def mark_dead(pid: int, directory: Path) -> None:
    """Forget the ``live*`` gauges of a worker that exited (its in-flight reviews are gone, and its
    view of the certificate and policies no longer serves); its counters are kept."""
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


class WorkerFiles:
    """Every worker's values, summed: prometheus_client's ``MultiProcessCollector`` minus a race.

    A worker creates its file empty and sizes it a moment later; a scrape reading it in between
    fails whole (``struct.error``), so every worker start could fail a scrape, or the registration
    of a starting worker's own collector. A file shorter than its 8-byte header holds no value yet
    and is skipped. (Files only grow, and only ``live*`` gauge files are ever removed while the
    server runs, which ``merge`` tolerates.)
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterable[metrics_core.Metric]:
        files = [f for f in glob.glob(os.path.join(self.directory, "*.db")) if _size(f) >= 8]
        merged: Iterable[metrics_core.Metric] = multiprocess.MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
        return merged


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:  # a dead worker's live gauges, just removed
        return 0


class Metrics:
    """The app's metrics. In multiprocess mode (see :func:`share`) the metrics write to this
    process's files and ``registry`` only holds the collector reading every worker's files."""

    def __init__(self) -> None:
        directory = shared_directory()
        r: prom.CollectorRegistry | None
        if directory is None:
            self.registry = r = prom.CollectorRegistry(auto_describe=True)
        else:
            # Not auto-described: registering would read every worker's files just to learn names.
            self.registry = prom.CollectorRegistry()
            self.registry.register(WorkerFiles(directory))
            r = None  # registered too, each worker's own values would be exposed beside the sums
        self.requests = prom.Counter(
            "admission_requests",
            "Admission reviews answered.",
            ["path", "kind", "operation", "decision"],
            registry=r,
        )
        self.latency = prom.Histogram(
            "admission_request_duration_seconds",
            "Time to answer an admission review.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = prom.Counter(
            "admission_errors",
            "Calls answered with an HTTP error (bad input, overload).",
            ["path", "type"],
            registry=r,
        )
        self.policy_errors = prom.Counter(
            "admission_policy_errors",
            "Policies that raised while evaluating a review.",
            ["policy"],
            registry=r,
        )
        # Across workers: the sum over the live ones (a dead worker's reviews are no longer in flight).
        self.in_flight = prom.Gauge(
            "admission_requests_in_flight", "Reviews being processed.", registry=r, multiprocess_mode="livesum"
        )
        self.policy_reloads = prom.Counter(
            "admission_policy_reloads",
            "Policy reload attempts by result.",
            ["result"],
            registry=r,
        )
        self.policy_config_valid = prom.Gauge(
            "admission_policy_config_valid",
            "1 when the policy files on disk are valid, 0 when the last "
            "reload failed (the previous set keeps serving).",
            registry=r,
            multiprocess_mode=FILE_READING,
        )
        self.cert_expiry = prom.Gauge(
            "admission_certificate_expiry_seconds",
            "Seconds until the serving certificate expires.",
            registry=r,
            multiprocess_mode=FILE_READING,
        )
        self.cert_reloads = prom.Counter(
            "admission_certificate_reloads",
            "Serving certificate reloads by result.",
            ["result"],
            registry=r,
        )
        self.admission_policy_decisions = prom.Counter(
            "admission_policy_decisions",
            "Reviews in which an admission policy (ValidatingAdmissionPolicy or MutatingAdmissionPolicy) "
            "denied, warned, audited or changed the object, by policy, binding, chain and the review's decision.",
            ["policy", "binding", "chain", "decision"],
            registry=r,
        )
        self.cert_reload_errors = prom.Counter(
            "admission_certificate_reload_errors",
            "Changed certificate files that were not loaded (unreadable, mismatched, expired or not "
            "yet valid); the current certificate keeps serving.",
            registry=r,
        )
        self.background_errors = prom.Counter(
            "admission_background_errors",
            "Unexpected errors in background tasks (policy and certificate reloads); the task goes on.",
            ["task"],
            registry=r,
        )
        self.record_errors = prom.Counter(
            "admission_record_errors",
            "Reviews that could not be recorded (the review was still answered).",
            registry=r,
        )

        # Children bound once per label set: ``labels()`` checks and joins its values on every
        # call, a third of what counting a review cost. The label values are bounded (routes,
        # known kinds, operations, decisions), so these stay small.
        self._answered: dict[tuple[str, ...], Any] = {}
        self._latencies: dict[tuple[str, ...], Any] = {}
        self._decided: dict[tuple[str, ...], Any] = {}
        self._failed: dict[tuple[str, ...], Any] = {}

        self.deferred = directory is None and _tallies_fit()
        """Whether reviews are counted in plain numbers (:class:`_Tally`) that a scrape hands to
        prometheus_client (:meth:`flush`) instead of one locked update per value per review: a
        single process, whose scrapes are the only readers. With ``--workers`` every value goes
        to the files at once, as a scrape on another worker must see it."""
        self.reviews_in_flight = 0
        """Reviews being processed now (``admission_requests_in_flight`` when deferred)."""
        self._tallies: dict[tuple[str, str, str, str], int] = {}
        self._timings: dict[str, _Tally] = {}

    def review_started(self) -> None:
        """A review is being processed (``admission_requests_in_flight``)."""
        if self.deferred:
            self.reviews_in_flight += 1
        else:
            self.in_flight.inc()

    def review_ended(self) -> None:
        if self.deferred:
            self.reviews_in_flight -= 1
        else:
            self.in_flight.dec()

    def answered(self, path: str, kind: str, operation: str, decision: str, seconds: float) -> None:
        """One review answered: ``admission_requests_total`` and its latency."""
        if self.deferred:
            key = (path, kind, operation, decision)
            tallies = self._tallies
            tallies[key] = tallies.get(key, 0) + 1
            timing = self._timings.get(path)
            if timing is None:
                timing = self._timings[path] = _Tally()
            timing.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            timing.total += seconds
            return
        _bound(self._answered, self.requests, (path, kind, operation, decision)).inc()
        _bound(self._latencies, self.latency, (path,)).observe(seconds)

    def flush(self) -> None:
        """Hand what :meth:`answered` counted in plain numbers to prometheus_client: the same
        values as observing each review (a test holds it), in one update per series."""
        tallies, self._tallies = self._tallies, {}
        for labels, count in tallies.items():
            _bound(self._answered, self.requests, labels).inc(count)
        for path, timing in self._timings.items():
            child = _bound(self._latencies, self.latency, (path,))
            # The running sum, added up review by review as observe() adds it: the same float.
            child._sum.set(timing.total)  # noqa: SLF001 - see _tallies_fit
            counts, timing.buckets = timing.buckets, [0] * len(timing.buckets)
            for bucket, count in zip(child._buckets, counts, strict=True):  # noqa: SLF001
                if count:
                    bucket.inc(count)
        if self.deferred:
            self.in_flight.set(self.reviews_in_flight)

    def policy_decided(self, policy: str, binding: str, chain: str, decision: str) -> None:
        """An admission policy's binding denied, warned, audited or patched a review. Bounded: the
        names come from the policy files."""
        _bound(self._decided, self.admission_policy_decisions, (policy, binding, chain, decision)).inc()

    def policy_failed(self, policy_id: str) -> None:
        """A built-in policy raised while evaluating a review (bounded by the registry)."""
        _bound(self._failed, self.policy_errors, (policy_id,)).inc()

    def render(self) -> bytes:
        self.flush()
        return prom.generate_latest(self.registry)


class _Tally:
    """One path's review latencies since the last :meth:`Metrics.flush`, counted per bucket of
    :data:`LATENCY_BUCKETS` (the last for longer ones, ``+Inf``) as prometheus_client's histogram
    counts them (an amount equal to a bound goes to that bound's bucket); and the sum of all of
    them since the start, which the histogram's sum is set to."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0


@functools.cache
def _tallies_fit() -> bool:
    """Whether this prometheus_client's histogram keeps a value per bucket and one for the sum
    (``_buckets`` with ``inc``, ``_sum`` with ``set``), which :meth:`Metrics.flush` updates: private
    names, unchanged since 0.4. Another layout means observing each review, as before. Asked
    only by a single process (in-memory values: the probe writes no file)."""
    probe = prom.Histogram("probe", "probe", buckets=LATENCY_BUCKETS, registry=None)
    buckets, total = getattr(probe, "_buckets", None), getattr(probe, "_sum", None)
    return (isinstance(buckets, list) and len(buckets) == len(LATENCY_BUCKETS) + 1
            and all(hasattr(bucket, "inc") for bucket in buckets) and hasattr(total, "set"))


def _bound(children: dict[tuple[str, ...], Any], metric: Any, labels: tuple[str, ...]) -> Any:
    """``metric.labels(*labels)``, bound once per label set and kept in ``children``."""
    child = children.get(labels)
    if child is None:
        child = children[labels] = metric.labels(*labels)
    return child

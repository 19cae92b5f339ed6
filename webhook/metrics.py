"""Prometheus metrics, on a registry owned by the app (no process-global state, so tests can build
many apps). Names follow Prometheus conventions: ``_total`` counters, ``_seconds`` histograms."""

from __future__ import annotations

import prometheus_client as prom

# Admission latency budgets are milliseconds; the API server's timeout is at most 30 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = prom.CollectorRegistry(auto_describe=True)
        r = self.registry
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
        self.in_flight = prom.Gauge("admission_requests_in_flight", "Reviews being processed.", registry=r)
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
        )
        self.cert_expiry = prom.Gauge(
            "admission_certificate_expiry_seconds",
            "Seconds until the serving certificate expires.",
            registry=r,
        )
        self.cert_reloads = prom.Counter(
            "admission_certificate_reloads",
            "Serving certificate reloads by result.",
            ["result"],
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

    def render(self) -> bytes:
        return prom.generate_latest(self.registry)

"""From a review's body to its answer's bytes: the part of a review that needs no aiohttp, compiled.

:func:`webhook.server.review_handler` keeps what needs the request (the concurrency bound, the
headers, reading the body, the HTTP response) and hands the body here. What follows is
synchronous (parse, the engine, the answer, metrics, the log line, the recorder) and ran
interpreted in the handler, where each line of it cost several times what mypyc makes of it: so it
lives in a module ``setup.py`` compiles. :class:`Services` holds what a review reads of the app,
gathered once when the app is built, so a review does not look each up on the ``Application``
(a Python ``__getitem__`` a lookup).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from webhook import engine, errors, logs, metrics, review
from webhook.policy import model

if TYPE_CHECKING:
    from webhook import appstate, config

log = logs.get("webhook.server")

KNOWN_KINDS = frozenset({"Namespace", "Service", "ConfigMap", "Secret", "Ingress", "ServiceAccount"})
"""Kinds worth their own metrics label even when no policy reads them (the API server may send them
to /validate if a cluster registers broad rules)."""


class Refusal(NamedTuple):
    """A call error found in the body (malformed, too large, nested too deeply): the handler answers
    it with ``status`` and counts it under ``reason``."""

    status: int
    reason: str
    message: str

    @classmethod
    def of(cls, exc: errors.BadReview) -> Refusal:
        """A body refused as unreadable or unparsable: ``bad_request``, or ``too_large`` past a limit."""
        return cls(exc.status, "bad_request" if exc.status == 400 else "too_large", str(exc))


class Services:
    """What a review reads of the app: built once by :func:`webhook.server.build_app`, read once per
    review by the handler. The objects are the app's own (``policies.current`` is swapped on
    reload, the cluster view filled in when the caches start, the slots counted), so a review sees
    what the app holds at that moment.

    A plain class rather than a dataclass: mypyc builds a dataclass from its field types at import,
    and these are imported for the type checker only (``appstate`` and ``config`` bring aiohttp and
    the settings, which this module otherwise does without)."""

    __slots__ = ("cluster", "limits", "policies", "recorder", "settings", "slots", "stats")

    def __init__(
        self,
        *,
        settings: config.ServeSettings,
        stats: metrics.Metrics,
        slots: appstate.ReviewSlots,
        policies: appstate.PolicyState,
        cluster: appstate.ClusterView,
        limits: review.Limits,
        recorder: appstate.ReviewSink | None,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.slots = slots
        self.policies = policies
        self.cluster = cluster
        self.limits = limits
        self.recorder = recorder


def answer(
    services: Services, body: bytes, *, path: str, chain: model.Chain, group: str | None, started: float,
    caller_timeout: float,
) -> bytes | Refusal:
    """The answer to the review in ``body`` as the bytes to send, or why it cannot be answered.
    ``started`` is when the request began (``time.perf_counter``), ``caller_timeout`` how long the
    caller waits (the review line says when the answer came later)."""
    try:
        parsed = review.parse(body, limits=services.limits)
    except errors.BadReview as exc:
        return Refusal.of(exc)
    ctx = parsed.context
    cluster_view = services.cluster
    if ctx.namespace:
        ctx.namespace_labels = cluster_view.labels(ctx.namespace)
    ctx.authorizer = cluster_view.authorizer
    ctx.params = cluster_view.params
    policies = services.policies.current
    try:
        outcome = engine.evaluate(policies, parsed.object, ctx, chain=chain, group=group)
    except errors.BadReview as exc:  # nested too deeply for the engine (review.Limits stops it sooner)
        return Refusal(exc.status, "bad_request", str(exc))
    response = review.respond(parsed, outcome)
    latency = time.perf_counter() - started
    decision = "allowed" if outcome.allowed else "denied"
    if outcome.allowed and outcome.patch:
        decision = "patched"
    stats = services.stats
    for policy_id in outcome.failed_policies:
        stats.policy_failed(policy_id)
    for decided in outcome.decided_by:  # admission policies: labels bounded by the policy files
        policy_name, _, binding_name = decided.partition("/")
        stats.policy_decided(policy_name, binding_name, chain, decision)
    # Label values must stay few: the kind comes from the caller, so unknown kinds share one label.
    kind_label = ctx.kind if ctx.kind in policies.kinds or ctx.kind in KNOWN_KINDS else "other"
    stats.answered(path, kind_label, ctx.operation, decision, latency)
    fields: dict[str, Any] = {
        "path": path,
        "uid": short(ctx.uid),
        "kind": short(ctx.kind),
        "namespace": short(ctx.namespace),
        "name": short(ctx.name),
        "operation": ctx.operation,
        "user": short(ctx.username),
        "dry_run": ctx.dry_run,
        "decision": decision,
        "message": short(outcome.message, 2048) or None,
        "warnings": len(outcome.warnings),
        "patch_ops": len(outcome.patch),
        "failed_policies": outcome.failed_policies or None,
        "policies": outcome.decided_by or None,
        "latency_ms": round(latency * 1000, 3),
        "over_deadline": latency > caller_timeout or None,
    }
    logs.review(fields, logger=log)
    sink = services.recorder
    if sink is not None:
        sink.submit(parsed, response, path=path, raw=body)
    return orjson.dumps(response)


def short(value: str, limit: int = 256) -> str:
    """Fields of a review are caller-controlled: a 300 KB name must not become a 300 KB log line."""
    return value if len(value) <= limit else f"{value[:limit]}...(+{len(value) - limit} chars)"

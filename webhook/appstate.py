"""What every part of the served app shares: app keys, their state types, and request helpers.

The bottom of the aiohttp layer. :mod:`webhook.server` builds the app and stores these on it;
:mod:`webhook.deadlines`, :mod:`webhook.recorder` and :mod:`webhook.faults` read them. None of those
imports another or the server, so the order in which the factory installs them is the only thing
that decides how they nest (see :func:`webhook.server.build_app`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from webhook import config, engine, metrics, review
from webhook.policy import model

JSON = "application/json"
ADMISSION_PREFIXES = ("/mutate", "/validate")
"""Paths the API server calls; everything else (probes, metrics) is for the kubelet and Prometheus."""


@dataclasses.dataclass
class PolicyState:
    """The policy set being served, swapped whole on reload so no review sees a half-loaded set."""

    current: engine.PolicySet
    fingerprint: str
    error: str | None = None
    """The last reload failure (file, line, problem); ``None`` when the files on disk are valid."""


@dataclasses.dataclass
class Lifecycle:
    """What ``/readyz`` reports besides the policies."""

    draining: bool = False
    certificate_expired: Callable[[], bool] = lambda: False
    certificate_problem: Callable[[], str | None] = lambda: None
    """Why the certificate files on disk were not loaded (the served one is still valid), if so."""


class NamespaceLabels(Protocol):
    """The watch-fed namespace cache (:class:`webhook.cluster.NamespaceCache`)."""

    def labels(self, name: str) -> Mapping[str, str] | None: ...


class ParamWatch(model.ParamSource, Protocol):
    """The watch-fed param cache (:class:`webhook.cluster.ParamCache`)."""

    def ensure(self, kinds: set[tuple[str, str]]) -> None: ...


@dataclasses.dataclass
class ClusterView:
    """What reviews learn from the cluster: namespace labels and SubjectAccessReview answers.

    Both stay ``None`` without cluster credentials (or until the watch starts): policies then see
    labels as unknown and ask no access review, which is what they are written to expect.
    """

    namespaces: NamespaceLabels | None = None
    authorizer: model.Authorizer | None = None
    params: ParamWatch | None = None
    """Param objects of the admission policies' paramKinds, watched in the cluster."""

    def labels(self, name: str) -> Mapping[str, str] | None:
        return self.namespaces.labels(name) if self.namespaces is not None else None


class ReviewSink(Protocol):
    """Where answered reviews go besides the caller (the recorder)."""

    def submit(
        self, parsed: review.Review, answer: dict[str, Any], *, path: str | None = None, raw: bytes | None = None
    ) -> None: ...


@dataclasses.dataclass(slots=True)
class ReviewSlots:
    """How many reviews are being answered, against ``--max-concurrent``. A review past the limit
    is refused at once (429), never queued, so a count is all it takes: no semaphore, whose
    acquire and release are coroutines and callbacks on every review."""

    limit: int
    taken: int = 0

    def full(self) -> bool:
        return self.taken >= self.limit


SETTINGS = web.AppKey("settings", config.ServeSettings)
POLICIES = web.AppKey("policies", PolicyState)
METRICS = web.AppKey("metrics", metrics.Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
LIMITER = web.AppKey("limiter", ReviewSlots)
CLUSTER = web.AppKey("cluster", ClusterView)
RECORDER: web.AppKey[ReviewSink] = web.AppKey("recorder")
"""Set only with ``--record``."""

DEADLINE = web.RequestKey("deadline", asyncio.Timeout)
"""The timer bounding this review (set by the deadline middleware), so a fault that simulates a
hung server can lift it."""


def json_error(status: int, message: str) -> web.Response:
    """A call error (4xx/5xx): a JSON body ``{"error": message}``, never HTML or plain text."""
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type=JSON)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | None) -> float | None:
    """Seconds in a Go duration (``10s``, ``1m0s``, ``1.5s``, ``500ms``; a bare number is seconds),
    or ``None`` when ``value`` is empty or not a duration. The API server sends ``?timeout=`` as
    ``time.Duration.String()`` of the webhook's ``timeoutSeconds``; :func:`caller_timeout` keeps
    the answers by query string, so this runs once per distinct query."""
    text = (value or "").strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    total, at = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != at:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        at = match.end()
    return total if at == len(text) else None


def caller_timeout(request: web.Request) -> float:
    """How long the caller waits for this review: ``?timeout=``, else the configured default.

    The API server sends the same query on every review (``timeout=10s``), so the answer is kept
    by query string (bounded: the text comes from the caller) and each call is a dict lookup; a
    miss reads the parameter as aiohttp decodes it. Nothing is stored on the request: a lookup of
    a missing key there raises and catches ``KeyError``, which cost more than this whole function."""
    query = request.query_string
    seconds = _TIMEOUT_BY_QUERY.get(query)
    if seconds is None:
        parsed = parse_duration(request.query.get("timeout")) if query else None
        seconds = parsed if parsed is not None and parsed > 0 else 0.0
        if len(_TIMEOUT_BY_QUERY) >= 256:
            _TIMEOUT_BY_QUERY.clear()
        _TIMEOUT_BY_QUERY[query] = seconds
    return seconds if seconds else request.app[SETTINGS].default_timeout


_TIMEOUT_BY_QUERY: dict[str, float] = {}
"""Query string -> its ``timeout`` in seconds, 0.0 where it has none (the default applies)."""


def route_label(request: web.Request) -> str:
    """The route's path for metrics labels; ``unmatched`` for paths no route serves (404s), so a
    scan of random URLs cannot create unbounded label values."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def is_review(request: web.Request) -> bool:
    """A call from the API server to an admission path (``POST /mutate...`` or ``/validate...``)."""
    return request.method == "POST" and request.path.startswith(ADMISSION_PREFIXES)
